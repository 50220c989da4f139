import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Cluster, ClusterService, GatewayModule, OnEvent, type GatewayEventContext } from '../../lib/nest';
import { LIBRARY_CLIENT_INTENTS, loadConfig, Meter } from './harness';

/**
 * `ours`: a Nest application context with `GatewayModule.forRoot` (shards `'auto'`: the load server's
 * `GET /gateway/bot` gives the count) and one provider whose `@OnEvent` handler touches the payload. Only the
 * scenario's event (`MESSAGE_CREATE`, or `GUILD_CREATE` for `guilds`) is handled; the corpus ends every shard with
 * that event, so the handler sees the end of the stream. As a fallback, `ClusterService.info()` sequences are
 * polled every 100 ms (only in stream mode: while idle it would be the only work). The identify window is 100 ms, or
 * the scenario's (`startup`).
 */

const config = loadConfig();
const meter = new Meter(config);

/** Keeps the thread busy for `us` microseconds (a handler with CPU work of its own). */
function busy(us: number): void {
  const until = process.hrtime.bigint() + BigInt(Math.round(us * 1_000));
  while (process.hrtime.bigint() < until) {
    // spin
  }
}

@Injectable()
class BenchHandler {
  touched = 0;

  constructor(cluster: Cluster) {
    // The measurement starts when READY arrives, even when handlers see it later (exactly-once claims it first).
    cluster.dispatch$.subscribe((event) => {
      if (event.t === 'READY') meter.shardReady(event.shardId);
    });
  }

  @OnEvent('READY')
  onReady(_data: unknown, context: GatewayEventContext): void {
    meter.shardReady(context.shardId);
  }

  @OnEvent(config.handledEvent)
  onEvent(data: any, context: GatewayEventContext): void {
    if (config.handlerWorkUs) busy(config.handlerWorkUs);
    this.touched += config.handledEvent === 'GUILD_CREATE' ? data.members.length + data.id.length : data.content.length + data.author.id.length;
    if (context.sequence === meter.lastSequence(context.shardId)) meter.shardDone(context.shardId);
  }
}

@Module({
  imports: [
    GatewayModule.forRoot({
      token: config.token,
      intents: LIBRARY_CLIENT_INTENTS,
      apiUrl: config.apiUrl,
      shards: config.redis ? { total: config.plan.length, ownership: 'redis' as const } : 'auto',
      identifyWindowMs: config.identifyWindowMs ?? 100,
      // bench/redis-ownership.ts: the shards owned through Redis, sessions and sequences saved there.
      ...(config.redis
        ? {
            redis: { url: config.redis.url },
            keyPrefix: config.redis.keyPrefix,
            sequenceSaveIntervalMs: config.redis.sequenceSaveIntervalMs,
            exactlyOnce: config.redis.exactlyOnce,
          }
        : {}),
      // `ours-workers`: the same application with its shards in worker threads, two per worker.
      ...(config.client === 'ours-workers' ? { strategy: { type: 'workers' as const, shardsPerWorker: 2 } } : {}),
    }),
  ],
  providers: [BenchHandler],
})
class BenchModule {}

async function main(): Promise<void> {
  meter.begin();
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: ['error'] });
  // With exactly-once, an event is handled a claim after it arrived: only the handler may say the stream is done.
  if (config.mode !== 'stream' || config.redis) return;
  const cluster = app.get(ClusterService);
  setInterval(() => {
    for (const shard of cluster.info()) if (shard.sequence === meter.lastSequence(shard.id)) meter.shardDone(shard.id);
  }, 100).unref();
}

main().catch((error: Error) => {
  process.stderr.write(`ours: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
