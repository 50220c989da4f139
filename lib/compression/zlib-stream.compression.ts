import type { IDecompressorFactory } from '../interfaces/decompressor.interface';
import { nodeZlibCompression } from './zlib-stream.decompressor';
import { loadZlibSync, ZlibSyncDecompressor } from './zlib-sync.decompressor';

/** Factory for {@link ZlibSyncDecompressor}; throws when `zlib-sync` is not installed. */
export const zlibSyncCompression: IDecompressorFactory = {
  query: 'zlib-stream',
  create: (onPayload, onError) => {
    const zlib = loadZlibSync();
    if (!zlib) throw new Error('zlib-sync is not installed');
    return new ZlibSyncDecompressor(zlib, onPayload, onError);
  },
};

/**
 * The default `zlib-stream` decompression: the native `zlib-sync` package when it is installed (an optional
 * dependency), `node:zlib` otherwise.
 */
export function defaultZlibStreamCompression(): IDecompressorFactory {
  return loadZlibSync() ? zlibSyncCompression : nodeZlibCompression;
}
