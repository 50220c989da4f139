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
    if (!endsWithSuffix(data)) {
      this.pending.push(data);
      return;
    }
    let input = data;
    if (this.pending.length > 0) {
      this.pending.push(data);
      input = Buffer.concat(this.pending);
      this.pending = [];
    }
    this.pipe.write(input, this.onPayload);
  }

  close(): void {
    this.pending = [];
    this.pipe.close();
  }
}

function endsWithSuffix(data: Buffer): boolean {
  const n = data.length;
  return (
    n >= 4 &&
    data[n - 4] === ZLIB_SUFFIX[0] &&
    data[n - 3] === ZLIB_SUFFIX[1] &&
    data[n - 2] === ZLIB_SUFFIX[2] &&
    data[n - 1] === ZLIB_SUFFIX[3]
  );
}

/** Factory for {@link ZlibStreamDecompressor}, the default compression. */
export const zlibStreamCompression: IDecompressorFactory = {
  query: 'zlib-stream',
  create: (onPayload, onError) => new ZlibStreamDecompressor(onPayload, onError),
};
