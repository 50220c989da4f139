import type { IDecompressor } from '../interfaces/decompressor.interface';
import { ZlibMessageBuffer } from './zlib-message-buffer';

/** The streaming shape shared by fflate's `Unzlib` and fzstd's `Decompress`. */
export interface PushEngine {
  ondata: (data: Uint8Array, final: boolean) => void;
  push(chunk: Uint8Array, final?: boolean): unknown;
}

/**
 * Decompresses with a pure-JavaScript streaming engine: each whole message is pushed once, and what the engine
 * hands back during that push is the payload. With `zlib-stream` framing, WebSocket messages are gathered until
 * one ends with `00 00 ff ff`; with `whole` framing (zstd-stream) each WebSocket message is one gateway message.
 * The size cap is checked once the push returns (an engine cannot be stopped halfway).
 */
export class JsPushDecompressor implements IDecompressor {
  private readonly message: ZlibMessageBuffer | null;
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private closed = false;

  constructor(
    private readonly engine: PushEngine,
    framing: 'zlib-stream' | 'whole',
    private readonly onPayload: (payload: Buffer) => void,
    private readonly onError: (error: Error) => void,
    private readonly maxBytes: number,
  ) {
    this.message = framing === 'zlib-stream' ? new ZlibMessageBuffer(maxBytes, (message) => this.fail(message)) : null;
    engine.ondata = (data) => {
      this.chunks.push(data);
      this.bytes += data.length;
    };
  }

  push(data: Buffer): void {
    if (this.closed) return;
    if (!this.message && data.length > this.maxBytes) return this.fail(`a compressed message exceeded ${this.maxBytes} bytes`);
    const input = this.message ? this.message.add(data) : data;
    if (!input) return;
    try {
      this.engine.push(input, false);
    } catch (error) {
      return this.fail((error as Error).message);
    }
    const { chunks, bytes } = this;
    this.chunks = [];
    this.bytes = 0;
    if (bytes > this.maxBytes) return this.fail(`a decompressed message exceeded ${this.maxBytes} bytes`);
    // A message that decompresses to nothing carries no payload.
    if (bytes === 0) return;
    this.onPayload(chunks.length === 1 ? toBuffer(chunks[0]) : Buffer.concat(chunks, bytes));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.message?.clear();
    this.chunks = [];
    this.engine.ondata = () => undefined;
  }

  private fail(message: string): void {
    this.close();
    this.onError(new Error(message));
  }
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
