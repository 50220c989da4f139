import { constants, createInflate, type Inflate } from 'node:zlib';
import type { IDecompressor } from '../interfaces/decompressor.interface';
import { ZlibMessageBuffer } from './zlib-message-buffer';

/** The synchronous part of a `node:zlib` handle: the same calls Node's own `inflateSync` makes. */
interface ZlibHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number) => void;
}

interface InflateInternals {
  _handle?: ZlibHandle;
  _writeState?: Uint32Array;
}

const OUTPUT_CHUNK = 64 * 1024;

let scratchBuffer: Buffer | undefined;

/**
 * One output buffer for every decompressor of the process: inflating is synchronous and each payload is consumed
 * before the next inflate, so connections can share it (100 shards do not hold 100 buffers).
 */
function sharedScratch(): Buffer {
  scratchBuffer ??= Buffer.allocUnsafe(OUTPUT_CHUNK);
  return scratchBuffer;
}

/** True when this Node exposes the synchronous zlib handle that {@link InflateSyncDecompressor} needs. */
export function supportsInflateSync(): boolean {
  const probe = createInflate() as Inflate & InflateInternals;
  const ok = typeof probe._handle?.writeSync === 'function' && probe._writeState instanceof Uint32Array;
  probe.close();
  return ok;
}

/**
 * `zlib-stream` transport compression on the calling thread with `node:zlib`'s own native handle: one inflate
 * context per connection, messages inflated in order as they arrive, no thread-pool round trip and no
 * buffering between socket and decoder. The inflated size of one message is capped (decompression bombs).
 */
export class InflateSyncDecompressor implements IDecompressor {
  private readonly engine: Inflate & InflateInternals;
  private readonly handle: ZlibHandle;
  private readonly state: Uint32Array;
  private readonly message: ZlibMessageBuffer;
  private failure: string | null = null;
  private readonly scratch = sharedScratch();
  private closed = false;

  constructor(
    private readonly onPayload: (payload: Buffer) => void,
    private readonly onError: (error: Error) => void,
    private readonly maxBytes: number,
  ) {
    this.engine = createInflate() as Inflate & InflateInternals;
    this.message = new ZlibMessageBuffer(maxBytes);
    this.handle = this.engine._handle!;
    this.state = this.engine._writeState!;
    this.handle.onerror = (message) => {
      this.failure = message;
    };
  }

  push(data: Buffer): void {
    if (this.closed) return;
    let input: Buffer | null;
    try {
      input = this.message.add(data);
    } catch (error) {
      return this.fail((error as Error).message);
    }
    if (!input) return;
    const output = this.inflate(input);
    if (output) this.onPayload(output);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.message.clear();
    this.engine.close();
  }

  /**
   * Inflates one message. A message that fits one output chunk comes back as a view of the shared scratch buffer,
   * valid until the next inflate; only longer messages are copied.
   */
  private inflate(input: Buffer): Buffer | null {
    const scratch = this.scratch;
    let chunks: Buffer[] | null = null;
    let total = 0;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      this.handle.writeSync(constants.Z_SYNC_FLUSH, input, inOff, inLen, scratch, 0, OUTPUT_CHUNK);
      if (this.failure) {
        this.fail(`inflate failed: ${this.failure}`);
        return null;
      }
      const availOut = this.state[0];
      const availIn = this.state[1];
      const produced = OUTPUT_CHUNK - availOut;
      total += produced;
      if (total > this.maxBytes) {
        this.fail(`an inflated message exceeded ${this.maxBytes} bytes`);
        return null;
      }
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut !== 0 && chunks === null) return scratch.subarray(0, produced);
      chunks ??= [];
      if (produced > 0) chunks.push(Buffer.from(scratch.subarray(0, produced)));
      if (availOut !== 0) break;
    }
    return Buffer.concat(chunks, total);
  }

  private fail(message: string): void {
    this.close();
    this.onError(new Error(message));
  }
}
