import * as zlib from 'node:zlib';
import { NativeSyncDecompressor, supportsNativeSync, type NativeEngine } from './native-sync.decompressor';

interface ZstdZlib {
  createZstdDecompress?: () => NativeEngine;
  constants: { ZSTD_e_continue?: number };
}

const zstdZlib = zlib as unknown as ZstdZlib;

let supported: boolean | undefined;

/** True when this Node's `node:zlib` has zstd with a handle {@link ZstdSyncDecompressor} can drive (Node 22.15+). */
export function supportsZstdSync(): boolean {
  const create = zstdZlib.createZstdDecompress;
  supported ??= typeof create === 'function' && supportsNativeSync(() => create());
  return supported;
}

/**
 * `zstd-stream` decompressed on the calling thread with `node:zlib`'s own zstd handle. Discord ends each gateway
 * message with a flush, inside one zstd frame that lasts as long as the connection: every WebSocket message
 * decompresses to exactly one payload.
 */
export class ZstdSyncDecompressor extends NativeSyncDecompressor {
  constructor(onPayload: (payload: Buffer) => void, onError: (error: Error) => void, maxBytes: number) {
    if (!supportsZstdSync()) throw new Error(`this Node (${process.version}) has no zstd in node:zlib`);
    super(zstdZlib.createZstdDecompress!(), zstdZlib.constants.ZSTD_e_continue ?? 0, onPayload, onError, maxBytes);
  }

  push(data: Buffer): void {
    if (this.closed) return;
    if (data.length > this.maxBytes) return this.fail(`a compressed message exceeded ${this.maxBytes} bytes`);
    this.deliver(data);
  }
}
