import { describe, it, beforeEach, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayIntentBits, GatewayOpcodes } from 'discord-api-types/v10';
import Redis from 'ioredis';
import { Cluster, ShardState } from '../../lib/core';
import { LeaseFencedSessionStore, RedisSessionStore, redisKey, ShardOwnership, shardLeaseKey, type OwnershipEvent } from '../../lib/redis';
import { VirtualClock, type LocalGateway } from '../../lib/nest/testing';
import { SHORT_SHARD_TIMINGS, eventually, eventuallyAsync, startGateway } from '../helpers/gateway-test-kit';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';

const LEASE_TTL_MS = 900;
/** The local deadline of a lease: the TTL less a margin of 10 % (at least 50 ms) after the renewal was sent. */
const DEADLINE_MS = 810;
/** How often the deadlines are checked: a tenth of the TTL. */
const WATCHDOG_MS = 90;
const TOTAL = 2;

let server: RunningRedisServer;
let redis: Redis;
let gateway: LocalGateway;
let cleanups: (() => Promise<unknown>)[] = [];
let prefixCount = 0;

interface Member {
  cluster: Cluster;
  store: RedisSessionStore;
  ownership: ShardOwnership;
  events: OwnershipEvent[];
}

/**
 * A process's worth of parts: a cluster of the ownership scheme, a Redis session store fenced by the leases, and the
 * ownership, on one client that fails commands at once while Redis is unreachable (instead of queueing them). With
 * `clock`, the ownership times its renewals and deadlines on it (the shards keep the real clock).
 */
async function member(memberId: string, keyPrefix: string, clock?: VirtualClock): Promise<Member> {
  const client = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  client.on('error', () => undefined);
  await client.connect();
  const store = new RedisSessionStore({ client, keyPrefix, flushIntervalMs: 100 });
  // The cluster is built before the ownership that fences its store.
  const fence: { ownership?: ShardOwnership } = {};
  const cluster = new Cluster({
    token: gateway.token,
    intents: GatewayIntentBits.Guilds,
    apiUrl: gateway.apiUrl,
    shards: { total: TOTAL, ownership: 'redis' },
    sessionStore: new LeaseFencedSessionStore(store, (shardId) => fence.ownership?.holds(shardId) ?? false),
    sessionSaveIntervalMs: 100,
    identifyWindowMs: 100,
    ...SHORT_SHARD_TIMINGS,
    closeTimeout: 300,
    random: () => 0.5,
  });
  const ownership = new ShardOwnership({ client, keyPrefix, cluster, memberId, leaseTtlMs: LEASE_TTL_MS, joinDelayMs: 0, clock });
  fence.ownership = ownership;
  const events: OwnershipEvent[] = [];
  ownership.events$.subscribe((event) => events.push(event));
  cleanups.push(async () => {
    await ownership.stop().catch(() => undefined);
    await cluster.down().catch(() => undefined);
    await store.close().catch(() => undefined);
    client.disconnect();
  });
  await cluster.up();
  await ownership.start();
  return { cluster, store, ownership, events };
}

function leaseKey(prefix: string, shardId: number): string {
  return shardLeaseKey(prefix, shardId);
}

void describe('ShardOwnership', () => {
  let prefix: string;

  beforeEach(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url);
    redis.on('error', () => undefined);
    gateway = await startGateway({ shards: TOTAL });
    prefix = `ndg-test:owner:${process.pid}:${++prefixCount}`;
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    cleanups = [];
    redis.disconnect();
    await gateway.close();
    await server.stop();
  });

  void it('a process paused past its lease closes the shard resumably at its local deadline and never writes its session again', async () => {
    // The ownership's clock stands still while Redis lets the leases expire: a process stalled (a long GC pause, say).
    const clock = new VirtualClock();
    const a = await member('a', prefix, clock);
    await eventually(() => a.cluster.info().filter((s) => s.state === ShardState.Ready).length === TOTAL, 15_000, 'both shards ready');
    gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'x' });
    await eventually(() => a.cluster.shards.get(0)?.session?.sequence === 2, 15_000, 'the event');
    const storedSequence = async () => JSON.parse((await redis.get(redisKey(prefix, 'session', 0))) ?? 'null')?.sequence;
    await eventuallyAsync(async () => (await storedSequence()) === 2, 15_000, 'the session saved at sequence 2');
    const connection = gateway.connectionOf(0)!;

    // Redis expires the lease (a real TTL), and another process claims shard 0 before this one runs again.
    await eventuallyAsync(async () => (await redis.exists(leaseKey(prefix, 0))) === 0, 15_000, 'the lease to expire in Redis');
    expect(await redis.set(leaseKey(prefix, 0), 'intruder|1', 'PX', 60_000, 'NX')).toBe('OK');
    gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'y' });

    // The process runs again: its timers fall due at once. The last renewal was sent at 0 ms, so the lease is
    // given up at its local deadline, 810 ms, on the watchdog's ninth check: not at 809.
    clock.advance(DEADLINE_MS - 1);
    expect(a.events.filter((e) => e.type === 'lost')).toEqual([]);
    clock.advance(1);
    expect(a.events.filter((e) => e.type === 'lost')).toEqual([
      { type: 'lost', shardId: 0, reason: 'its lease could not be renewed in time' },
      { type: 'lost', shardId: 1, reason: 'its lease could not be renewed in time' },
    ]);
    await eventually(() => connection.closeCode !== null, 15_000, 'the close');
    expect(connection.closeCode).toBe(4200);
    expect(a.cluster.has(0)).toBe(false);
    expect(a.ownership.owned).not.toContain(0);
    // Whatever the store still held is written now: the session in Redis is still the one written under the lease.
    await a.store.flush();
    expect(await storedSequence()).toBe(2);
    expect(a.cluster.has(0)).toBe(false);

    // Once the lease is free again, the process claims the shard at its next round and resumes from the stored
    // session (shard 1, whose lease expired too, is claimed back as well).
    const resumes = gateway.framesOf(GatewayOpcodes.Resume, 0).length;
    await redis.del(leaseKey(prefix, 0));
    // A round that started before the lease was freed (still waiting on Redis on a busy machine) is joined by the
    // next tick instead of a new one: move the clock on, a round at a time, until one has claimed the shard. Nothing
    // is held meanwhile, so no lease deadline runs; once claimed, the clock stands still again.
    await eventually(
      () => {
        if (!a.ownership.owned.includes(0)) clock.advance(300);
        return a.ownership.owned.includes(0);
      },
      15_000,
      'shard 0 claimed again',
    );
    await eventually(() => a.cluster.shards.get(0)?.state === ShardState.Ready, 15_000, 'the shard back');
    const resume = gateway.framesOf(GatewayOpcodes.Resume, 0).slice(resumes);
    expect(resume.map((f) => f.d.seq)).toEqual([2]);
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(TOTAL);
  });

  void it('two processes split the shards; a graceful stop hands them over through the store, with RESUME', async () => {
    const a = await member('a', prefix);
    await eventually(() => a.ownership.owned.length === TOTAL, 15_000, 'a owns everything');
    await eventually(() => a.cluster.info().every((s) => s.state === ShardState.Ready), 15_000, 'ready');
    const b = await member('b', prefix);
    await eventually(() => a.ownership.owned.length === 1 && b.ownership.owned.length === 1, 15_000, 'one each');
    await eventually(() => b.cluster.info().some((s) => s.state === ShardState.Ready), 15_000, 'b ready');
    const moved = b.ownership.owned[0];
    expect(a.events).toContainEqual({ type: 'released', shardId: moved });
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(TOTAL);

    await a.ownership.stop();
    expect(await redis.zrange(redisKey(prefix, 'members'), '0', '-1')).toEqual(['b']);
    await eventually(() => b.ownership.owned.length === TOTAL, 3 * LEASE_TTL_MS, 'b owns everything');
    await eventually(() => b.cluster.info().every((s) => s.state === ShardState.Ready), 15_000, 'b ready');
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(TOTAL);
    expect(gateway.identifyViolations).toBe(0);
  });

  void it('when Redis is unreachable, the shards are closed at the local deadline, before their leases could expire', async () => {
    const clock = new VirtualClock();
    const a = await member('a', prefix, clock);
    await eventually(() => a.cluster.info().filter((s) => s.state === ShardState.Ready).length === TOTAL, 15_000, 'ready');
    const connections = [0, 1].map((id) => gateway.connectionOf(id)!);
    await server.stop();
    // Renewals are due at 300 and 600 ms and fail; the leases were last renewed at 0 ms, so the watchdog, every
    // 90 ms, gives them up at 810 ms, 90 ms before Redis would expire them.
    clock.advance(DEADLINE_MS - 1);
    expect(a.events.filter((e) => e.type === 'lost')).toEqual([]);
    expect(a.ownership.holds(0)).toBe(true);
    clock.advance(1);
    expect(a.ownership.holds(0)).toBe(false);
    expect(a.events.filter((e) => e.type === 'lost').map((e) => (e as { reason: string }).reason)).toEqual([
      'its lease could not be renewed in time',
      'its lease could not be renewed in time',
    ]);
    await eventually(() => connections.every((c) => c.closeCode !== null), 2 * LEASE_TTL_MS, 'the shards closed');
    expect(connections.map((c) => c.closeCode)).toEqual([4200, 4200]);
    expect(a.ownership.owned).toEqual([]);
    expect(DEADLINE_MS % WATCHDOG_MS).toBe(0);
  });

  void it('checks its options', () => {
    const cluster = new Cluster({ token: 't', intents: 0, shards: { total: 1, ownership: 'redis' } });
    const make = (extra: object) => () => new ShardOwnership({ url: 'redis://127.0.0.1:1', cluster, ...extra });
    expect(make({ leaseTtlMs: 100 })).toThrow('leaseTtlMs must be an integer >= 300');
    expect(make({ renewIntervalMs: 9_000 })).toThrow('renewIntervalMs must be an integer from 1 to leaseTtlMs / 2');
    expect(make({ memberId: 'a|b' })).toThrow('memberId must be a non-empty string without "|"');
  });
});
