import { GatewayOptionsError } from '../errors/gateway-options.error';
import type { ZstdStreamEngine } from '../interfaces/compression-options.interface';
import type { IDecompressorFactory } from '../interfaces/decompressor.interface';
import { JsPushDecompressor, type PushEngine } from './js-push.decompressor';
import { loadOptionalModule } from './optional-module';
import { supportsZstdSync, ZstdSyncDecompressor } from './zstd-sync.decompressor';

/** The part of the optional `fzstd` package used here. */
interface FzstdModule {
  Decompress: new () => PushEngine;
}

/** Factory for {@link ZstdSyncDecompressor} (Node 22.15+). */
export const nodeZstdCompression: IDecompressorFactory = {
  query: 'zstd-stream',
  create: (onPayload, onError, limits) => new ZstdSyncDecompressor(onPayload, onError, limits.maxMessageBytes),
};

function fzstdCompression(option: string): IDecompressorFactory {
  const fzstd = loadOptionalModule<FzstdModule>(option, 'fzstd', `the zstd-stream engine 'fzstd'`);
  return {
    query: 'zstd-stream',
    create: (onPayload, onError, limits) => new JsPushDecompressor(new fzstd.Decompress(), 'whole', onPayload, onError, limits.maxMessageBytes),
  };
}

function isInstalled(packageName: string): boolean {
  try {
    require.resolve(packageName);
    return true;
  } catch {
    return false;
  }
}

/**
 * The `zstd-stream` factory of one engine; with none given, Node's own zstd where this Node has it, else the
 * optional `fzstd` package. Fails with a {@link GatewayOptionsError} naming `option` when the engine is missing.
 */
export function zstdStreamCompression(engine?: ZstdStreamEngine, option = 'compression.engine'): IDecompressorFactory {
  if (engine === 'node' || (engine === undefined && supportsZstdSync())) {
    if (!supportsZstdSync()) {
      throw new GatewayOptionsError(option, `the zstd-stream engine 'node' needs zstd in node:zlib (Node 22.15 or later), and this is Node ${process.version}`);
    }
    return nodeZstdCompression;
  }
  if (engine === undefined && !isInstalled('fzstd')) {
    // No engine was named: the option at fault is `compression` itself.
    throw new GatewayOptionsError(
      'compression',
      `zstd-stream needs Node's own zstd (Node 22.15 or later; this is ${process.version}) or the optional package "fzstd" (npm install fzstd)`,
    );
  }
  return fzstdCompression(option);
}
