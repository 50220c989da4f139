/** The synchronous part of a `node:zlib` handle: the calls Node's own `inflateSync` makes. */
interface ZlibHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number) => void;
}

/** A `node:zlib` object (`Inflate`, `ZstdDecompress`) seen from inside. */
export interface NodeZlibObject {
  _handle?: ZlibHandle;
  _writeState?: Uint32Array;
  close(): void;
}

/**
 * Drives one `node:zlib` decompression context synchronously through its native handle (`writeSync`, as Node's
 * `inflateSync` and the library's `NativeSyncDecompressor` do) into one output buffer that grows to the largest
 * message: no stream, no thread pool, no copies but the doublings.
 */
export class NativeSync {
  /** Output of the last {@link run}, from byte 0; replaced by a larger buffer when a message does not fit. */
  output = Buffer.allocUnsafe(64 * 1024);
  private readonly handle: ZlibHandle;
  /** After each `writeSync`: [avail_out, avail_in]. */
  private readonly state: Uint32Array;
  private failure: string | null = null;

  constructor(
    engine: NodeZlibObject,
    /** Flush value of every write (`Z_SYNC_FLUSH` for inflate, `ZSTD_e_continue` for zstd). */
    private readonly flush: number,
  ) {
    if (!engine._handle || !(engine._writeState instanceof Uint32Array)) throw new Error(`this Node (${process.version}) has no synchronous zlib handle`);
    this.handle = engine._handle;
    this.state = engine._writeState;
    this.handle.onerror = (message) => {
      this.failure = message;
    };
  }

  /** Decompresses all of `input`; returns how many bytes of {@link output} it produced. */
  run(input: Buffer): number {
    let out = this.output;
    let inOff = 0;
    let inLen = input.length;
    let produced = 0;
    for (;;) {
      this.handle.writeSync(this.flush, input, inOff, inLen, out, produced, out.length - produced);
      if (this.failure) throw new Error(`node:zlib: ${this.failure}`);
      inOff += inLen - this.state[1];
      inLen = this.state[1];
      produced = out.length - this.state[0];
      if (this.state[0] !== 0) return produced;
      // Output buffer full: grow it and go on.
      const larger = Buffer.allocUnsafe(out.length * 2);
      out.copy(larger, 0, 0, produced);
      this.output = out = larger;
    }
  }
}
