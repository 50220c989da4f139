import { Cluster, DispatchFilter } from '../../lib/core';
import { LIBRARY_CLIENT_INTENTS, loadConfig, Meter } from './harness';

/**
 * `ours-core`: the framework-free `Cluster` (`nestjs-discord-gateway/core`) with the same filter and handler work
 * as `ours`, without Nest. It shows what the gateway layer itself costs, apart from the framework.
 */

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
  process.stderr.write(`ours-core: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
