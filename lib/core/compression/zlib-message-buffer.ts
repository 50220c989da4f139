import { ZLIB_SUFFIX } from '../constants/gateway.constants';

/**
 * Gathers the WebSocket messages of one zlib-stream message until they end with the flush marker
 * `00 00 ff ff`. A message that arrives whole (the usual case) passes through without a copy or an allocation.
 */
export class ZlibMessageBuffer {
  private chunks: Buffer[] = [];
  private bytes = 0;

  constructor(
    /** Most compressed bytes one message may take. */
    private readonly maxBytes: number,
    /** Told when a message grows past `maxBytes` (what was gathered is dropped). */
    private readonly onTooLarge: (message: string) => void,
  ) {}

  /** Adds one WebSocket message. Returns the whole compressed message once it is complete, else null. */
  add(data: Buffer): Buffer | null {
    if (this.chunks.length === 0) {
      if (data.length > this.maxBytes) return this.tooLarge();
      if (endsWithSuffixAlone(data)) return data;
    } else if (this.bytes + data.length > this.maxBytes) {
      return this.tooLarge();
    }
    this.chunks.push(data);
    this.bytes += data.length;
    // The marker may straddle WebSocket messages, so look at the tail of everything gathered.
    if (!endsWithSuffix(this.chunks)) return null;
    const whole = Buffer.concat(this.chunks, this.bytes);
    this.clear();
    return whole;
  }

  private tooLarge(): null {
    this.clear();
    this.onTooLarge(`a compressed message exceeded ${this.maxBytes} bytes`);
    return null;
  }

  /** Drops anything gathered. */
  clear(): void {
    this.chunks = [];
    this.bytes = 0;
  }
}


function endsWithSuffixAlone(data: Buffer): boolean {
  const n = data.length;
  return n >= 4 && data[n - 4] === ZLIB_SUFFIX[0] && data[n - 3] === ZLIB_SUFFIX[1] && data[n - 2] === ZLIB_SUFFIX[2] && data[n - 1] === ZLIB_SUFFIX[3];
}

function endsWithSuffix(chunks: readonly Buffer[]): boolean {
  let matched = 0;
  for (let c = chunks.length - 1; c >= 0 && matched < ZLIB_SUFFIX.length; c--) {
    const chunk = chunks[c];
    for (let i = chunk.length - 1; i >= 0 && matched < ZLIB_SUFFIX.length; i--) {
      if (chunk[i] !== ZLIB_SUFFIX[ZLIB_SUFFIX.length - 1 - matched]) return false;
      matched++;
    }
  }
  return matched === ZLIB_SUFFIX.length;
}
