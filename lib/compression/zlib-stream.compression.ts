import type { IDecompressorFactory } from '../interfaces/decompressor.interface';
import { InflateSyncDecompressor, supportsInflateSync } from './inflate-sync.decompressor';
import { nodeZlibCompression } from './zlib-stream.decompressor';

/** Factory for {@link InflateSyncDecompressor}: `zlib-stream` inflated on the calling thread. */
export const inflateSyncCompression: IDecompressorFactory = {
  query: 'zlib-stream',
  create: (onPayload, onError, limits) => new InflateSyncDecompressor(onPayload, onError, limits.maxMessageBytes),
};

let preferred: IDecompressorFactory | undefined;

/**
 * The default `zlib-stream` decompression: synchronous inflate on `node:zlib`'s native handle where this Node
 * exposes it (every supported version does), the stream API of `node:zlib` otherwise.
 */
export function defaultZlibStreamCompression(): IDecompressorFactory {
  preferred ??= supportsInflateSync() ? inflateSyncCompression : nodeZlibCompression;
  return preferred;
}
