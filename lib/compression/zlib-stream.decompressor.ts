import { constants, createInflate } from 'node:zlib';
import type { IDecompressor, IDecompressorFactory } from '../interfaces/decompressor.interface';
import { ZlibPipe } from './zlib-pipe';
import { ZlibMessageBuffer } from './zlib-message-buffer';

/**
 * `zlib-stream` transport compression with `node:zlib`'s stream API (each message a thread-pool round trip; the
 * fallback where the synchronous handle is not available): one inflate context per connection; WebSocket messages
 * are gathered until one ends with `00 00 ff ff`, then the whole message is inflated into one payload.
 */
export class ZlibStreamDecompressor implements IDecompressor {
  private readonly pipe: ZlibPipe;
  private readonly message: ZlibMessageBuffer;

  constructor(
    private readonly onPayload: (payload: Buffer | string) => void,
    private readonly onError: (error: Error) => void,
    maxMessageBytes = Infinity,
  ) {
    this.message = new ZlibMessageBuffer(maxMessageBytes);
    this.pipe = new ZlibPipe(createInflate({ flush: constants.Z_SYNC_FLUSH }), onError, maxMessageBytes);
  }

  push(data: Buffer): void {
    let input: Buffer | null;
    try {
      input = this.message.add(data);
    } catch (error) {
      this.close();
      this.onError(error as Error);
      return;
    }
    if (input) this.pipe.write(input, this.onPayload);
  }

  close(): void {
    this.message.clear();
    this.pipe.close();
  }
}

/** Factory for {@link ZlibStreamDecompressor} (`node:zlib`). */
export const nodeZlibCompression: IDecompressorFactory = {
  query: 'zlib-stream',
  create: (onPayload, onError, limits) => new ZlibStreamDecompressor(onPayload, onError, limits.maxMessageBytes),
};
