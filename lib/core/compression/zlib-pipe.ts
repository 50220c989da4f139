import type { Transform } from 'node:stream';

/**
 * Writes into a zlib stream created with `flush: Z_SYNC_FLUSH` and hands back, in order, exactly the
 * output that each write produced. One instance per zlib stream.
 */
export class ZlibPipe {
  private output: Buffer[] = [];
  private closed = false;

  private outputBytes = 0;

  constructor(
    private readonly stream: Transform,
    onError: (error: Error) => void,
    /** Most bytes one write may produce; past it the pipe fails. */
    private readonly maxOutputBytes = Infinity,
  ) {
    stream.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      this.output.push(chunk);
      this.outputBytes += chunk.length;
      if (this.outputBytes > this.maxOutputBytes) {
        this.close();
        onError(new Error(`an inflated message exceeded ${this.maxOutputBytes} bytes`));
      }
    });
    stream.on('error', (error: Error) => {
      if (this.closed) return;
      this.closed = true;
      onError(error);
    });
  }

  /** Feeds `input`; `done` receives everything the stream produced for it. */
  write(input: Buffer | string, done: (output: Buffer) => void): void {
    if (this.closed) return;
    this.stream.write(input, (error) => {
      if (error || this.closed) return;
      const chunks = this.output;
      this.output = [];
      this.outputBytes = 0;
      done(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    });
  }

  /** Destroys the stream; pending writes deliver nothing. */
  close(): void {
    this.closed = true;
    this.stream.destroy();
  }
}
