import type { ZlibStreamEngine } from '../interfaces/compression-options.interface';
import type { IDecompressorFactory } from '../interfaces/decompressor.interface';
import { InflateSyncDecompressor, supportsInflateSync } from './inflate-sync.decompressor';
import { JsPushDecompressor, type PushEngine } from './js-push.decompressor';
import { loadOptionalModule } from './optional-module';
import { nodeZlibCompression } from './zlib-stream.decompressor';
import { ZlibSyncDecompressor, type ZlibSyncModule } from './zlib-sync.decompressor';

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

/** The part of the optional `fflate` package used here. */
interface FflateModule {
  Unzlib: new () => PushEngine;
}

/**
 * The `zlib-stream` factory of one engine. Optional packages load here, so a missing one fails at startup with
 * a {@link GatewayOptionsError} naming `option`.
 */
export function zlibStreamCompression(engine: ZlibStreamEngine = 'node', option = 'compression.engine'): IDecompressorFactory {
  switch (engine) {
    case 'node':
      return defaultZlibStreamCompression();
    case 'node-stream':
      return nodeZlibCompression;
    case 'zlib-sync': {
      const zlibSync = loadOptionalModule<ZlibSyncModule>(option, 'zlib-sync', `the zlib-stream engine 'zlib-sync'`);
      return {
        query: 'zlib-stream',
        create: (onPayload, onError, limits) => new ZlibSyncDecompressor(zlibSync, onPayload, onError, limits.maxMessageBytes),
      };
    }
    case 'fflate': {
      const fflate = loadOptionalModule<FflateModule>(option, 'fflate', `the zlib-stream engine 'fflate'`);
      return {
        query: 'zlib-stream',
        create: (onPayload, onError, limits) => new JsPushDecompressor(new fflate.Unzlib(), 'zlib-stream', onPayload, onError, limits.maxMessageBytes),
      };
    }
  }
}
