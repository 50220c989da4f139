import type { Transform } from 'node:stream';

/**
 * Writes into a zlib stream created with `flush: Z_SYNC_FLUSH` and hands back, in order, exactly the
 * output that each write produced. One instance per zlib stream.
 */
export class ZlibPipe {
  private output: Buffer[] = [];
  private closed = false;

  constructor(
    private readonly stream: Transform,
    onError: (error: Error) => void,
  ) {
    stream.on('data', (chunk: Buffer) => this.output.push(chunk));
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
      done(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    });
  }

  /** Destroys the stream; pending writes deliver nothing. */
  close(): void {
    this.closed = true;
    this.stream.destroy();
  }
}
