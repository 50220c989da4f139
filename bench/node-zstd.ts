import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import type { NodeZlibObject } from './native-sync';

/**
 * The part of `node:zlib`'s zstd (Node 22.15 and later, 23.8 and later) the benchmark uses, typed here because
 * @types/node 20 does not declare it.
 */
export interface NodeZstd {
  createZstdCompress(options?: { flush?: number }): Transform & { flush(kind: number, callback: () => void): void };
  createZstdDecompress(): NodeZlibObject;
  zstdCompressSync(data: Buffer): Buffer;
  constants: { ZSTD_e_continue: number; ZSTD_e_flush: number; ZSTD_e_end: number };
}

/** `node:zlib`'s zstd, or null when this Node has none. */
export function nodeZstd(): NodeZstd | null {
  const z = zlib as unknown as Partial<NodeZstd> & { constants: Partial<NodeZstd['constants']> };
  const complete =
    typeof z.createZstdCompress === 'function' &&
    typeof z.createZstdDecompress === 'function' &&
    typeof z.zstdCompressSync === 'function' &&
    z.constants.ZSTD_e_flush !== undefined &&
    z.constants.ZSTD_e_end !== undefined;
  return complete ? (zlib as unknown as NodeZstd) : null;
}
