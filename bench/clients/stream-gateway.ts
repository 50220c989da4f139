import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { GatewayModule } from '../../lib/nest';
import { LIBRARY_CLIENT_INTENTS } from './harness';

/**
 * A gateway process for bench/redis-streams.ts: `GatewayModule` owning every shard through Redis, with
 * `delivery: 'redis-streams'` and no handler of its own. Prints `STREAM_GATEWAY_STARTED` once it has bootstrapped.
 */
interface Config {
  apiUrl: string;
  token: string;
  total: number;
  redisUrl: string;
  keyPrefix: string;
  /** Transport compression (the library's default) or none. */
  compression: boolean;
}

// With --cpu-prof, the profile is written on a normal exit only.
if (process.env.BENCH_CPU_PROF) process.once('SIGTERM', () => process.exit(0));

const config = JSON.parse(process.env.BENCH_STREAM_GATEWAY ?? 'null') as Config;

@Module({
  imports: [
    GatewayModule.forRoot({
      token: config.token,
      intents: LIBRARY_CLIENT_INTENTS,
      apiUrl: config.apiUrl,
      ...(config.compression ? {} : { compression: false as const }),
      identifyWindowMs: 100,
      shards: { total: config.total, ownership: 'redis' },
      redis: { url: config.redisUrl },
      keyPrefix: config.keyPrefix,
      delivery: 'redis-streams',
      streams: { groupRefreshMs: 100 },
      awaitReady: false,
    }),
  ],
})
class GatewayAppModule {}

void NestFactory.createApplicationContext(GatewayAppModule, { logger: process.env.BENCH_DEBUG ? ['error', 'warn', 'log'] : ['error', 'warn'] }).then(() => process.stdout.write('STREAM_GATEWAY_STARTED\n'));
