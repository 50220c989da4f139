import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import type { INestApplication } from '@nestjs/common';
import { GatewayOpcodes } from 'discord-api-types/v10';
import Redis from 'ioredis';
import { ClusterService, GatewayModule, type GatewayModuleOptions } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import { redisKey, shardLeaseKey } from '../../lib/redis';
import { createMessage, type LocalGateway } from '../../lib/nest/testing';
import { overlappingConnections } from '../helpers/gateway-connections';
import { eventually, eventuallyAsync } from '../helpers/gateway-test-kit';
import { HandledEvents } from '../helpers/handled-events';
import { OwnershipRecorder } from '../helpers/ownership-recorder';
import { startRedisSentinelGroup, type RunningSentinelGroup } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';

const harness = new NestHarness();
const TOTAL = 4;
const KEY_PREFIX = `ndg-test:sentinel:${process.pid}`;
const LEASE_TTL_MS = 10_000;

function ready(app: INestApplication): number[] {
  return app.get(ClusterService).info().filter((s) => s.state === ShardState.Ready).map((s) => s.id);
}

void describe('Redis Sentinel: the primary fails over during a run', { timeout: 90_000 }, () => {
  let group: RunningSentinelGroup;
  const inspectors: Redis[] = [];

  before(async () => {
    group = await startRedisSentinelGroup(1);
  });
  afterEach(() => harness.cleanup());
  after(async () => {
    for (const client of inspectors) client.disconnect();
    await group?.stop();
  });

  function appWith(gateway: LocalGateway, memberId: string): Promise<INestApplication> {
    const options: Partial<GatewayModuleOptions> = {
      redis: { sentinels: group.sentinelAddresses, name: group.name },
      keyPrefix: KEY_PREFIX,
      memberId,
      shards: { total: TOTAL, ownership: 'redis' },
      leaseTtlMs: LEASE_TTL_MS,
      sessionSaveIntervalMs: 100,
    };
    return harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, options))], providers: [HandledEvents, OwnershipRecorder] }, new CapturingLogger());
  }

  /** A client of the server on `port` (not through the sentinels), closed after the suite. */
  function direct(port: number): Redis {
    const client = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
    // The server may be the one killed later: its reconnect errors are expected.
    client.on('error', () => undefined);
    inspectors.push(client);
    return client;
  }

  /**
   * Waits until the sentinel names the server on `port` as the primary, then until both members have
   * heartbeated into it after the switch; returns the ms from `since` to each step.
   */
  async function waitForSwitch(port: number, since: number): Promise<{ switchedMs: number; heartbeatMs: number }> {
    await eventuallyAsync(async () => (await group.primaryPort().catch(() => 0)) === port, 30_000, `the sentinel to promote ${port}`);
    const switchedMs = Date.now() - since;
    const primary = direct(port);
    const [seconds, micros] = await primary.time();
    const switchedAt = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    await eventuallyAsync(
      async () => {
        const scores = await primary.zrange(redisKey(KEY_PREFIX, 'members'), '0', '-1', 'WITHSCORES');
        return scores.filter((_, i) => i % 2 === 1 && Number(scores[i]) >= switchedAt).length === 2;
      },
      30_000,
      `both members to heartbeat into ${port}`,
    );
    return { switchedMs, heartbeatMs: Date.now() - since };
  }

  void it('SENTINEL FAILOVER, then kill -9 of the new primary: leases kept, no reconnect, no double connection, no lost event', async (t) => {
    const gateway = await harness.gateway({ shards: TOTAL });
    const a = await appWith(gateway, 'a');
    const b = await appWith(gateway, 'b');
    await eventually(() => ready(a).length === TOTAL / 2 && ready(b).length === TOTAL / 2, 20_000, 'two shards each');
    const ownedBefore = [a, b].map((app) => app.get(ClusterService).ownedShards());
    const eventsBefore = [a, b].map((app) => app.get(OwnershipRecorder).events.length);
    const framesBefore = gateway.frames.length;

    // Events flow all along, one per shard every 20 ms.
    const sent: string[] = [];
    let n = 0;
    const stream = setInterval(() => {
      for (let shardId = 0; shardId < TOTAL; shardId++) {
        sent.push(`${shardId}#${gateway.dispatch(shardId, 'MESSAGE_CREATE', createMessage(n++))}`);
      }
    }, 20);
    try {
      // 1. An ordered failover: the replica becomes the primary, the old primary its replica.
      const sentinel = direct(group.sentinels[0].port);
      const failoverAt = Date.now();
      await sentinel.call('SENTINEL', 'FAILOVER', group.name);
      const manual = await waitForSwitch(group.replica.port, failoverAt);
      t.diagnostic(`SENTINEL FAILOVER: switched after ${manual.switchedMs} ms, both members heartbeating into the new primary after ${manual.heartbeatMs} ms`);
      const leases = await direct(group.replica.port).mget(Array.from({ length: TOTAL }, (_, id) => shardLeaseKey(KEY_PREFIX, id)));
      expect(leases.map((token) => token && token.slice(0, token.lastIndexOf('|'))).sort()).toEqual(['a', 'a', 'b', 'b']);

      // 2. The new primary dies: the sentinel notices (down-after 1 s) and promotes the old one back.
      await waitForReplicaInSync(direct(group.primary.port));
      const killedAt = Date.now();
      await group.replica.stop();
      const crash = await waitForSwitch(group.primary.port, killedAt);
      t.diagnostic(`kill -9 of the primary: switched after ${crash.switchedMs} ms, both members heartbeating into the new primary after ${crash.heartbeatMs} ms (lease TTL ${LEASE_TTL_MS} ms)`);
    } finally {
      clearInterval(stream);
    }

    const handled = () => [...a.get(HandledEvents).handled, ...b.get(HandledEvents).handled];
    await eventually(() => sent.every((key) => handled().includes(key)), 15_000, `all ${sent.length} events handled`);
    expect(handled().filter((key) => sent.includes(key)).sort()).toEqual([...sent].sort());
    t.diagnostic(`${sent.length} events dispatched during the two failovers, each handled once`);
    // Nobody lost, released or claimed a shard, and no shard connected again.
    expect([a, b].map((app) => app.get(ClusterService).ownedShards())).toEqual(ownedBefore);
    expect([a, b].map((app, i) => app.get(OwnershipRecorder).events.slice(eventsBefore[i]).filter((e) => e.type !== 'members'))).toEqual([[], []]);
    expect(gateway.frames.slice(framesBefore).filter((f) => f.op === GatewayOpcodes.Identify || f.op === GatewayOpcodes.Resume)).toEqual([]);
    expect(overlappingConnections(gateway)).toEqual([]);
  });
});

/** Resolves once `replica` reports its link to the primary up. */
async function waitForReplicaInSync(replica: Redis): Promise<void> {
  await eventuallyAsync(async () => (await replica.info('replication')).includes('master_link_status:up'), 20_000, 'the old primary to sync from the new one');
}
