import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import type { INestApplication } from '@nestjs/common';
import { GatewayOpcodes } from 'discord-api-types/v10';
import Redis from 'ioredis';
import { ClusterService, GatewayModule, type GatewayModuleOptions } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import { redisKey, shardLeaseKey } from '../../lib/redis';
import { createMessage, type LocalGateway } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { HandledEvents } from '../helpers/handled-events';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';

const harness = new NestHarness();
const TOTAL = 4;
const KEY_PREFIX = `ndg-test:restart:${process.pid}`;

function appWith(gateway: LocalGateway, redisUrl: string, memberId: string): Promise<INestApplication> {
  const options: Partial<GatewayModuleOptions> = {
    redis: { url: redisUrl },
    keyPrefix: KEY_PREFIX,
    memberId,
    shards: { total: TOTAL, ownership: 'redis' },
    leaseTtlMs: 1_500,
  };
  return harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, options))], providers: [HandledEvents] }, new CapturingLogger());
}

function readyCount(app: INestApplication): number {
  return app.get(ClusterService).info().filter((s) => s.state === ShardState.Ready).length;
}

void describe('Redis restarted empty mid-run', { timeout: 60_000 }, () => {
  const servers: RunningRedisServer[] = [];
  let redis: Redis | undefined;

  afterEach(async () => {
    await harness.cleanup();
    redis?.disconnect();
    for (const server of servers) await server.stop();
  });

  void it('the live holders set their leases and sessions again before anybody claims: 0 lost, every hand-over RESUMEs', async () => {
    const first = await startRedisServer();
    servers.push(first);
    const gateway = await harness.gateway({ shards: TOTAL });
    const a = await appWith(gateway, first.url, 'a');
    const b = await appWith(gateway, first.url, 'b');
    await eventually(() => readyCount(a) === TOTAL / 2 && readyCount(b) === TOTAL / 2, 10_000, 'two shards each');
    const shardsOfA = a.get(ClusterService).info().map((s) => s.id);
    const sessions = Array.from({ length: TOTAL }, (_, id) => gateway.sessionOf(id));

    // Redis goes away and comes back on the same port without its data; events keep flowing meanwhile.
    await first.stop();
    const restartedAt = gateway.frames.length;
    const sent: string[] = [];
    for (let shardId = 0; shardId < TOTAL; shardId++) {
      for (let i = 0; i < 5; i++) sent.push(`${shardId}#${gateway.dispatch(shardId, 'MESSAGE_CREATE', createMessage(shardId * 100 + i))}`);
    }
    const second = await startRedisServer({ port: first.port });
    servers.push(second);
    redis = new Redis(second.url);

    // Each lease and each session is back in Redis, held by the process that held it before.
    const leaseKeys = Array.from({ length: TOTAL }, (_, id) => shardLeaseKey(KEY_PREFIX, id));
    const sessionKeys = Array.from({ length: TOTAL }, (_, id) => redisKey(KEY_PREFIX, 'session', id));
    let leases: (string | null)[] = [];
    let saved: (string | null)[] = [];
    const deadline = Date.now() + 10_000;
    for (;;) {
      [leases, saved] = await Promise.all([redis.mget(leaseKeys), redis.mget(sessionKeys)]);
      if ([...leases, ...saved].every((value) => value !== null)) break;
      if (Date.now() > deadline) throw new Error(`leases ${JSON.stringify(leases)} and sessions ${JSON.stringify(saved)} not set again`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const owners = leases.map((token) => token!.slice(0, token!.lastIndexOf('|')));
    expect(owners).toEqual(Array.from({ length: TOTAL }, (_, id) => (shardsOfA.includes(id) ? 'a' : 'b')));
    expect(saved.map((json) => JSON.parse(json!).sessionId)).toEqual(sessions);

    // A hands its shards over: B resumes them from the sessions set again.
    await harness.closeApp(a);
    await eventually(() => readyCount(b) === TOTAL, 10_000, 'B running every shard');
    const handshakes = gateway.frames.slice(restartedAt).filter((f) => f.op === GatewayOpcodes.Identify || f.op === GatewayOpcodes.Resume);
    expect(handshakes.filter((f) => f.op === GatewayOpcodes.Identify)).toEqual([]);
    expect(handshakes.map((f) => f.shardId).sort()).toEqual([...shardsOfA].sort());
    for (let shardId = 0; shardId < TOTAL; shardId++) {
      for (let i = 0; i < 5; i++) sent.push(`${shardId}#${gateway.dispatch(shardId, 'MESSAGE_CREATE', createMessage(shardId * 100 + 50 + i))}`);
    }
    const handled = () => [...a.get(HandledEvents).handled, ...b.get(HandledEvents).handled];
    await eventually(() => sent.every((key) => handled().includes(key)), 10_000, 'every event handled');
    expect(handled().filter((key) => sent.includes(key)).sort()).toEqual([...sent].sort());
  });
});
