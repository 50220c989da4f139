import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import type { INestApplication } from '@nestjs/common';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { Cluster as RedisCluster } from 'ioredis';
import { ClusterService, GatewayModule, ShardService, type GatewayModuleOptions } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import { RedisDispatchDeduplicator, redisKey, shardLeaseKey } from '../../lib/redis';
import { createMessage, type LocalGateway } from '../../lib/nest/testing';
import { overlappingConnections } from '../helpers/gateway-connections';
import { eventually } from '../helpers/gateway-test-kit';
import { HandledEvents } from '../helpers/handled-events';
import { startRedisCluster, type RunningRedisCluster } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';

const harness = new NestHarness();
const TOTAL = 4;
const KEY_PREFIX = `ndg-test:cluster:${process.pid}`;

function appWith(gateway: LocalGateway, redis: GatewayModuleOptions['redis'], memberId: string, logger: CapturingLogger): Promise<INestApplication> {
  const options: Partial<GatewayModuleOptions> = {
    redis,
    keyPrefix: KEY_PREFIX,
    memberId,
    shards: { total: TOTAL, ownership: 'redis' },
    leaseTtlMs: 3_000,
    sessionSaveIntervalMs: 100,
  };
  return harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, options))], providers: [HandledEvents] }, logger);
}

function ready(app: INestApplication): number[] {
  return app.get(ClusterService).info().filter((s) => s.state === ShardState.Ready).map((s) => s.id);
}

void describe('Redis Cluster (3 primaries started by the test)', { timeout: 60_000 }, () => {
  let cluster: RunningRedisCluster;
  let inspector: RedisCluster;
  const clients: RedisCluster[] = [];

  before(async () => {
    cluster = await startRedisCluster(3);
    inspector = new RedisCluster(cluster.nodes);
  });
  afterEach(() => harness.cleanup());
  after(async () => {
    for (const client of [inspector, ...clients]) client?.disconnect();
    await cluster?.stop();
  });

  void it('exactly-once claims work on the cluster: one pipeline of one-slot scripts, each event claimed once', async () => {
    const client = new RedisCluster(cluster.nodes);
    clients.push(client);
    const keyPrefix = `${KEY_PREFIX}:dedupe`;
    const first = new RedisDispatchDeduplicator({ client, keyPrefix });
    const second = new RedisDispatchDeduplicator({ nodes: cluster.nodes, keyPrefix });
    const batch = (shardId: number, sessionId: string, sequences: number[]) => sequences.map((s) => ({ shardId, sessionId, t: 'MESSAGE_CREATE', s, d: null }));
    expect(await first.claim([...batch(0, 'a', [1, 2]), ...batch(3, 'b', [7])])).toEqual([true, true, true]);
    expect(await second.claim([...batch(0, 'a', [2, 3]), ...batch(3, 'b', [7]), ...batch(1, 'a', [2])])).toEqual([false, true, false, true]);
    await second.close();
  });

  void it('two apps share the shards, commands cross over pub/sub, a hand-over RESUMEs: every key of the bot in one slot', async () => {
    const gateway = await harness.gateway({ shards: TOTAL });
    const logs = [new CapturingLogger(), new CapturingLogger()];
    // One app gives the nodes, the other its own ioredis Cluster client.
    const client = new RedisCluster(cluster.nodes);
    clients.push(client);
    const a = await appWith(gateway, { nodes: cluster.nodes.map((n) => `${n.host}:${n.port}`) }, 'a', logs[0]);
    const b = await appWith(gateway, { client }, 'b', logs[1]);
    await eventually(() => ready(a).length === TOTAL / 2 && ready(b).length === TOTAL / 2, 20_000, 'two shards each');
    expect([...ready(a), ...ready(b)].sort()).toEqual([0, 1, 2, 3]);

    // The bot's keys share one hash slot, so they live on one node; the scripts ran there.
    const leaseKeys = Array.from({ length: TOTAL }, (_, id) => shardLeaseKey(KEY_PREFIX, id));
    const slots = new Set(await Promise.all([...leaseKeys, redisKey(KEY_PREFIX, 'members'), redisKey(KEY_PREFIX, 'session', 0)].map((key) => inspector.cluster('KEYSLOT', key))));
    expect(slots.size).toBe(1);
    const owners = (await inspector.mget(leaseKeys)).map((token) => token && token.slice(0, token.lastIndexOf('|')));
    expect(owners.sort()).toEqual(['a', 'a', 'b', 'b']);

    // A command for a shard of B, sent through A, crosses over the cluster's pub/sub.
    const target = ready(b)[0];
    const from = gateway.frames.length;
    await a.get(ShardService).setPresence({ status: 'idle' as never, activities: [], since: null, afk: false }, target);
    const frame = await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate && f.shardId === target, 15_000, from);
    expect(frame.d.status).toBe('idle');

    // Events of every shard reach their owner once; then A leaves and B resumes A's shards from the saved sessions.
    const sent: string[] = [];
    for (let shardId = 0; shardId < TOTAL; shardId++) sent.push(`${shardId}#${gateway.dispatch(shardId, 'MESSAGE_CREATE', createMessage(shardId))}`);
    const handled = () => [...a.get(HandledEvents).handled, ...b.get(HandledEvents).handled];
    await eventually(() => sent.every((key) => handled().includes(key)), 10_000, 'every event handled');
    const shardsOfA = ready(a);
    const leftAt = gateway.frames.length;
    await harness.closeApp(a);
    await eventually(() => ready(b).length === TOTAL, 15_000, 'B running every shard');
    const handshakes = gateway.frames.slice(leftAt).filter((f) => f.op === GatewayOpcodes.Identify || f.op === GatewayOpcodes.Resume);
    expect(handshakes.map((f) => [f.op, f.shardId]).sort()).toEqual(shardsOfA.map((id) => [GatewayOpcodes.Resume, id]).sort());
    for (let shardId = 0; shardId < TOTAL; shardId++) sent.push(`${shardId}#${gateway.dispatch(shardId, 'MESSAGE_CREATE', createMessage(10 + shardId))}`);
    await eventually(() => sent.every((key) => handled().includes(key)), 10_000, 'every event handled after the hand-over');
    expect(handled().filter((key) => sent.includes(key)).sort()).toEqual([...sent].sort());
    expect(overlappingConnections(gateway)).toEqual([]);
    expect(gateway.identifyViolations).toBe(0);
    const failures = logs.flatMap((log) => log.lines).filter((l) => /CROSSSLOT|round failed|could not/.test(l.message));
    expect(failures).toEqual([]);
  });
});
