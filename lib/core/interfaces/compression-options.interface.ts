/**
 * What inflates `zlib-stream`:
 * - `'node'`: `node:zlib` on the calling thread, through its native handle (its stream API where a Node build
 *   lacks the handle). No extra package.
 * - `'node-stream'`: `node:zlib`'s stream API (each message a thread-pool round trip).
 * - `'zlib-sync'`: the optional native package `zlib-sync`.
 * - `'fflate'`: the optional pure-JavaScript package `fflate`.
 */
export type ZlibStreamEngine = 'node' | 'node-stream' | 'zlib-sync' | 'fflate';

/**
 * What decompresses `zstd-stream`:
 * - `'node'`: `node:zlib`'s zstd (Node 22.15 and later, 23.8 and later), on the calling thread.
 * - `'fzstd'`: the optional pure-JavaScript package `fzstd`.
 */
export type ZstdStreamEngine = 'node' | 'fzstd';

/** Transport compression with a chosen engine. A chosen engine that cannot load fails at startup, naming it. */
export type CompressionOptions =
  | {
      type: 'zlib-stream';
      /** @defaultValue `'node'` */
      engine?: ZlibStreamEngine;
    }
  | {
      type: 'zstd-stream';
      /** @defaultValue `'node'` where this Node has zstd, else `'fzstd'` when it is installed */
      engine?: ZstdStreamEngine;
    };
