import { GatewayOptionsError } from '../errors/gateway-options.error';
import type { CompressionOptions } from '../interfaces/compression-options.interface';
import type { IDecompressorFactory } from '../interfaces/decompressor.interface';
import { payloadCompression } from './payload.decompressor';
import { zlibStreamCompression } from './zlib-stream.compression';
import { zstdStreamCompression } from './zstd-stream.compression';

const ZLIB_ENGINES = ['node', 'node-stream', 'zlib-sync', 'fflate'];
const ZSTD_ENGINES = ['node', 'fzstd'];

/**
 * Turns the `compression` option into a decompressor factory (or `false`), loading the engine it names. Throws
 * {@link GatewayOptionsError} for an unknown value or an engine that cannot load.
 */
export function resolveCompression(value: 'zlib-stream' | 'zstd-stream' | 'payload' | CompressionOptions | IDecompressorFactory | false): IDecompressorFactory | false {
  if (value === false) return false;
  if (value === 'zlib-stream') return zlibStreamCompression('node');
  if (value === 'zstd-stream') return zstdStreamCompression();
  if (value === 'payload') return payloadCompression;
  if (typeof value === 'object' && value !== null) {
    if (typeof (value as IDecompressorFactory).create === 'function') return value as IDecompressorFactory;
    const { type, engine } = value as CompressionOptions;
    if (type === 'zlib-stream') {
      if (engine !== undefined && !ZLIB_ENGINES.includes(engine)) {
        throw new GatewayOptionsError('compression.engine', `must be one of ${ZLIB_ENGINES.map((e) => `'${e}'`).join(', ')} for zlib-stream`);
      }
      return zlibStreamCompression(engine ?? 'node');
    }
    if (type === 'zstd-stream') {
      if (engine !== undefined && !ZSTD_ENGINES.includes(engine)) {
        throw new GatewayOptionsError('compression.engine', `must be one of ${ZSTD_ENGINES.map((e) => `'${e}'`).join(', ')} for zstd-stream`);
      }
      return zstdStreamCompression(engine);
    }
    throw new GatewayOptionsError('compression.type', `must be 'zlib-stream' or 'zstd-stream'`);
  }
  throw new GatewayOptionsError('compression', `must be 'zlib-stream', 'zstd-stream', 'payload', { type, engine }, false or a decompressor factory`);
}
