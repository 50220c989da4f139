import { Cluster, DispatchFilter, type CompressionOptions } from '../../lib/core';
import { LIBRARY_CLIENT_INTENTS, loadConfig, Meter } from './harness';

/**
 * `ours-core`: the framework-free `Cluster` (`nestjs-discord-gateway/core`) with the same filter and handler work
 * as `ours`, without Nest. It shows what the gateway layer itself costs, apart from the framework.
 *
 * `ours-core` keeps the default compression (`zlib-stream`, engine `'node'`); `ours-core-<engine>` is the same
 * client with another engine ({@link ENGINES}).
 */

/** The `compression` option of each `ours-core-<engine>` client. */
const ENGINES: Record<string, CompressionOptions> = {
  'ours-core-node-stream': { type: 'zlib-stream', engine: 'node-stream' },
  'ours-core-zlib-sync': { type: 'zlib-stream', engine: 'zlib-sync' },
  'ours-core-fflate': { type: 'zlib-stream', engine: 'fflate' },
  'ours-core-zstd-node': { type: 'zstd-stream', engine: 'node' },
  'ours-core-zstd-fzstd': { type: 'zstd-stream', engine: 'fzstd' },
};

const config = loadConfig();
const meter = new Meter(config);

async function main(): Promise<void> {
  meter.begin();
  const cluster = new Cluster({
    token: config.token,
    intents: LIBRARY_CLIENT_INTENTS,
    apiUrl: config.apiUrl,
    shards: 'auto',
    identifyWindowMs: config.identifyWindowMs ?? 100,
    dispatchFilter: new DispatchFilter([config.handledEvent]),
    ...(config.client in ENGINES ? { compression: ENGINES[config.client] } : {}),
  });
  let touched = 0;
  cluster.dispatch$.subscribe((event) => {
    if (event.t === 'READY') {
      meter.shardReady(event.shardId);
      return;
    }
    if (event.t !== config.handledEvent) return;
    const data = event.d as any;
    touched += config.handledEvent === 'GUILD_CREATE' ? data.members.length + data.id.length : data.content.length + data.author.id.length;
    if (event.s === meter.lastSequence(event.shardId)) meter.shardDone(event.shardId);
  });
  await cluster.up();
  if (config.mode !== 'stream') return;
  setInterval(() => {
    for (const shard of cluster.info()) if (shard.sequence === meter.lastSequence(shard.id)) meter.shardDone(shard.id);
    if (touched < 0) process.stdout.write('');
  }, 100).unref();
}

main().catch((error: Error) => {
  process.stderr.write(`${config.client}: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
