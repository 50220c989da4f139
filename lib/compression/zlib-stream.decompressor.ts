import { constants, createInflate } from 'node:zlib';
import { ZLIB_SUFFIX } from '../constants/gateway.constants';
import type { IDecompressor, IDecompressorFactory } from '../interfaces/decompressor.interface';
import { ZlibPipe } from './zlib-pipe';

/**
 * `zlib-stream` transport compression: one inflate context per connection; WebSocket messages are buffered
 * until one ends with `00 00 ff ff`, then the buffer is inflated into one payload.
 */
export class ZlibStreamDecompressor implements IDecompressor {
  private readonly pipe: ZlibPipe;
  private pending: Buffer[] = [];

  constructor(
    private readonly onPayload: (payload: Buffer) => void,
    onError: (error: Error) => void,
  ) {
    this.pipe = new ZlibPipe(createInflate({ flush: constants.Z_SYNC_FLUSH }), onError);
  }

  push(data: Buffer): void {
    this.pending.push(data);
    // The suffix may straddle WebSocket messages, so look at the tail of everything buffered.
    if (!endsWithSuffix(this.pending)) return;
    const input = this.pending.length === 1 ? data : Buffer.concat(this.pending);
    this.pending = [];
    this.pipe.write(input, this.onPayload);
  }

  close(): void {
    this.pending = [];
    this.pipe.close();
  }
}

function endsWithSuffix(chunks: Buffer[]): boolean {
  let matched = 0;
  for (let c = chunks.length - 1; c >= 0 && matched < ZLIB_SUFFIX.length; c--) {
    const chunk = chunks[c];
    for (let i = chunk.length - 1; i >= 0 && matched < ZLIB_SUFFIX.length; i--) {
      if (chunk[i] !== ZLIB_SUFFIX[ZLIB_SUFFIX.length - 1 - matched]) return false;
      matched++;
    }
  }
  return matched === ZLIB_SUFFIX.length;
}

/** Factory for {@link ZlibStreamDecompressor}, the default compression. */
export const zlibStreamCompression: IDecompressorFactory = {
  query: 'zlib-stream',
  create: (onPayload, onError) => new ZlibStreamDecompressor(onPayload, onError),
};
