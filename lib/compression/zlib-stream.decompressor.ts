import { constants, createInflate } from 'node:zlib';
import type { IDecompressor, IDecompressorFactory } from '../interfaces/decompressor.interface';
import { ZlibPipe } from './zlib-pipe';
import { endsWithZlibSuffix } from './zlib-suffix';

/**
 * `zlib-stream` transport compression with `node:zlib` (each message a thread-pool round trip; used when the
 * optional `zlib-sync` package is not installed): one inflate context per connection; WebSocket messages are buffered
 * until one ends with `00 00 ff ff`, then the buffer is inflated into one payload.
 */
export class ZlibStreamDecompressor implements IDecompressor {
  private readonly pipe: ZlibPipe;
  private pending: Buffer[] = [];

  constructor(
    private readonly onPayload: (payload: Buffer | string) => void,
    onError: (error: Error) => void,
    maxMessageBytes = Infinity,
  ) {
    this.pipe = new ZlibPipe(createInflate({ flush: constants.Z_SYNC_FLUSH }), onError, maxMessageBytes);
  }

  push(data: Buffer): void {
    this.pending.push(data);
    // The suffix may straddle WebSocket messages, so look at the tail of everything buffered.
    if (!endsWithZlibSuffix(this.pending)) return;
    const input = this.pending.length === 1 ? data : Buffer.concat(this.pending);
    this.pending = [];
    this.pipe.write(input, this.onPayload);
  }

  close(): void {
    this.pending = [];
    this.pipe.close();
  }
}

/** Factory for {@link ZlibStreamDecompressor} (`node:zlib`). */
export const nodeZlibCompression: IDecompressorFactory = {
  query: 'zlib-stream',
  create: (onPayload, onError, limits) => new ZlibStreamDecompressor(onPayload, onError, limits.maxMessageBytes),
};
