import type { IDecompressor } from '../interfaces/decompressor.interface';

/** The synchronous part of a `node:zlib` handle: the same calls Node's own `inflateSync` makes. */
interface NativeHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number) => void;
}

/** A `node:zlib` stream object (`Inflate`, `ZstdDecompress`) seen from inside. */
export interface NativeEngine {
  _handle?: NativeHandle;
  _writeState?: Uint32Array;
  close(): void;
}

const FIRST_OUTPUT = 64 * 1024;
/** The shared output buffer grows for large messages (GUILD_CREATE) and is kept up to this size. */
const MAX_KEPT_OUTPUT = 4 * 1024 * 1024;

let scratchBuffer: Buffer | undefined;

/**
 * One output buffer for every decompressor of the process (of the thread): decompressing is synchronous and each
 * payload is consumed before the next one, so connections can share it (100 shards do not hold 100 buffers).
 */
function sharedScratch(): Buffer {
  scratchBuffer ??= Buffer.allocUnsafe(FIRST_OUTPUT);
  return scratchBuffer;
}

/** True when `create()` gives a `node:zlib` object whose native handle can be driven synchronously. */
export function supportsNativeSync(create: () => NativeEngine): boolean {
  const probe = create();
  const ok = typeof probe._handle?.writeSync === 'function' && probe._writeState instanceof Uint32Array;
  probe.close();
  return ok;
}

/**
 * Decompresses on the calling thread with a `node:zlib` object's own native handle: one context per connection,
 * messages decompressed in order as they arrive, no thread-pool round trip. The decompressed size of one message
 * is capped (decompression bombs). Subclasses decide when a message is complete.
 */
export abstract class NativeSyncDecompressor implements IDecompressor {
  private readonly handle: NativeHandle;
  private readonly state: Uint32Array;
  private failure: string | null = null;
  protected closed = false;

  protected constructor(
    private readonly engine: NativeEngine,
    /** Flush value passed with each write (`Z_SYNC_FLUSH` for inflate). */
    private readonly flush: number,
    private readonly onPayload: (payload: Buffer) => void,
    private readonly onError: (error: Error) => void,
    protected readonly maxBytes: number,
  ) {
    this.handle = engine._handle!;
    this.state = engine._writeState!;
    this.handle.onerror = (message) => {
      this.failure = message;
    };
  }

  abstract push(data: Buffer): void;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.engine.close();
  }

  /** Decompresses one whole message and hands its payload on (a message that decompresses to nothing has none). */
  protected deliver(input: Buffer): void {
    const output = this.decompress(input);
    if (output && output.length > 0) this.onPayload(output);
  }

  protected fail(message: string): void {
    this.close();
    this.onError(new Error(message));
  }

  /**
   * Decompresses straight into the shared output buffer, doubling it when a message does not fit (the bytes so
   * far are copied once per doubling, never gathered in pieces). The payload is a view of that buffer, valid
   * until the next call.
   */
  private decompress(input: Buffer): Buffer | null {
    let out = sharedScratch();
    let outOff = 0;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      const room = out.length - outOff;
      this.handle.writeSync(this.flush, input, inOff, inLen, out, outOff, room);
      if (this.failure) {
        this.fail(this.failure);
        return null;
      }
      const availOut = this.state[0];
      const availIn = this.state[1];
      outOff += room - availOut;
      if (outOff > this.maxBytes) {
        this.fail(`a decompressed message exceeded ${this.maxBytes} bytes`);
        return null;
      }
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut !== 0) break;
      // Never more room than one byte past the cap: a bomb fails as soon as it passes it.
      const bigger = Buffer.allocUnsafe(Math.min(out.length * 2, this.maxBytes + 1));
      out.copy(bigger, 0, 0, outOff);
      out = bigger;
      if (bigger.length <= MAX_KEPT_OUTPUT) scratchBuffer = bigger;
    }
    return out.subarray(0, outOff);
  }
}
