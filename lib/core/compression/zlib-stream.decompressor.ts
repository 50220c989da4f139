import { constants, createInflate } from 'node:zlib';
import type { DecompressorFlow, IDecompressor, IDecompressorFactory } from '../interfaces/decompressor.interface';
import { ZlibPipe } from './zlib-pipe';
import { ZlibMessageBuffer } from './zlib-message-buffer';

/**
 * `zlib-stream` transport compression with `node:zlib`'s stream API (each message a thread-pool round trip; the
 * fallback where the synchronous handle is not available): one inflate context per connection; WebSocket messages
 * are gathered until one ends with `00 00 ff ff`, then the whole message is inflated into one payload. With a
 * {@link DecompressorFlow}, the socket is paused while {@link ZlibStreamDecompressor.MAX_BACKLOG} messages wait
 * for the thread pool, and read again once a quarter of that is left.
 */
export class ZlibStreamDecompressor implements IDecompressor {
  /** Messages written to zlib and not inflated yet past which the socket is paused. */
  static readonly MAX_BACKLOG = 32;
  private readonly pipe: ZlibPipe;
  private readonly message: ZlibMessageBuffer;
  private backlog = 0;
  private paused = false;

  constructor(
    private readonly onPayload: (payload: Buffer | string) => void,
    private readonly onError: (error: Error) => void,
    maxMessageBytes = Infinity,
    private readonly flow?: DecompressorFlow,
  ) {
    this.message = new ZlibMessageBuffer(maxMessageBytes, (message) => {
      this.close();
      this.onError(new Error(message));
    });
    this.pipe = new ZlibPipe(createInflate({ flush: constants.Z_SYNC_FLUSH }), onError, maxMessageBytes);
  }

  push(data: Buffer): void {
    const input = this.message.add(data);
    if (!input) return;
    this.backlog++;
    // Paused again on every push past the limit: the shard may have resumed reading for its own reasons.
    if (this.flow && this.backlog >= ZlibStreamDecompressor.MAX_BACKLOG) {
      this.paused = true;
      this.flow.pause();
    }
    this.pipe.write(input, (payload) => {
      this.backlog--;
      if (this.paused && this.backlog <= ZlibStreamDecompressor.MAX_BACKLOG / 4) {
        this.paused = false;
        this.flow!.resume();
      }
      this.onPayload(payload);
    });
  }

  close(): void {
    this.message.clear();
    this.pipe.close();
  }
}

/** Factory for {@link ZlibStreamDecompressor} (`node:zlib`). */
export const nodeZlibCompression: IDecompressorFactory = {
  query: 'zlib-stream',
  create: (onPayload, onError, limits, flow) => new ZlibStreamDecompressor(onPayload, onError, limits.maxMessageBytes, flow),
};
