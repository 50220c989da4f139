import { inflateSync } from 'node:zlib';
import type { IDecompressor, IDecompressorFactory } from '../interfaces/decompressor.interface';

/**
 * Payload compression (IDENTIFY `compress: true`): every binary WebSocket message is one payload compressed on its
 * own with zlib (no context shared between messages). Text messages never reach it: the shard reads them as JSON.
 */
export class PayloadDecompressor implements IDecompressor {
  private closed = false;

  constructor(
    private readonly onPayload: (payload: Buffer) => void,
    private readonly onError: (error: Error) => void,
    private readonly maxBytes: number,
  ) {}

  push(data: Buffer): void {
    if (this.closed) return;
    let payload: Buffer;
    try {
      payload = inflateSync(data, { maxOutputLength: this.maxBytes });
    } catch (error) {
      const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError;
      this.closed = true;
      this.onError(new Error(tooLarge ? `a decompressed message exceeded ${this.maxBytes} bytes` : (error as Error).message));
      return;
    }
    if (payload.length > 0) this.onPayload(payload);
  }

  close(): void {
    this.closed = true;
  }
}

/** Factory for {@link PayloadDecompressor}: `compression: 'payload'`. */
export const payloadCompression: IDecompressorFactory = {
  query: '',
  payload: true,
  create: (onPayload, onError, limits) => new PayloadDecompressor(onPayload, onError, limits.maxMessageBytes),
};
