import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayIntentBits, GatewayOpcodes } from 'discord-api-types/v10';
import Redis from 'ioredis';
import { Cluster } from '../../lib/core/cluster/cluster';
import type { ClusterOptions } from '../../lib/core/interfaces/cluster-options.interface';
import type { ShardSession } from '../../lib/core/interfaces/shard-session.interface';
import { RedisSessionStore, redisKey, shardLeaseKey, type RedisSessionStoreOptions } from '../../lib/redis';
import { ShardState } from '../../lib/core/shard/shard-state';
import type { LocalGateway, RecordedFrame } from '../../lib/nest/testing';
import { SHORT_SHARD_TIMINGS, eventually, eventuallyAsync, startGateway } from '../helpers/gateway-test-kit';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';

const OP_IDENTIFY = GatewayOpcodes.Identify;
const OP_RESUME = GatewayOpcodes.Resume;

let server: RunningRedisServer;
let redis: Redis;
let stores: RedisSessionStore[] = [];
let extraClients: Redis[] = [];
let clusters: Cluster[] = [];
let gateways: LocalGateway[] = [];
let prefixCount = 0;

function freshPrefix(): string {
  return `ndg-test:sessions:${process.pid}:${++prefixCount}`;
}

function storeOn(options: Partial<RedisSessionStoreOptions> & { keyPrefix: string }): RedisSessionStore {
  const store = new RedisSessionStore({ url: server.url, ...options } as RedisSessionStoreOptions);
  stores.push(store);
  return store;
}

function session(n: number, shardCount = 4): ShardSession {
  return { sessionId: `session-${n}`, sequence: n * 10, resumeUrl: 'wss://resume.example/', shardCount };
}

/** A connection of its own, as a second process would have. */
function newClient(): Redis {
  const client = new Redis(server.url, { lazyConnect: true });
  extraClients.push(client);
  return client;
}

function clusterOn(gateway: LocalGateway, options: Partial<ClusterOptions>): Cluster {
  const cluster = new Cluster({
    token: gateway.token,
    intents: GatewayIntentBits.Guilds,
    apiUrl: gateway.apiUrl,
    identifyWindowMs: 100,
    ...SHORT_SHARD_TIMINGS,
    random: () => 0.5,
    ...options,
  });
  clusters.push(cluster);
  return cluster;
}

function handshakesAfter(gateway: LocalGateway, afterConnectionId: number): RecordedFrame[] {
  return gateway.frames.filter((f) => f.connectionId > afterConnectionId && (f.op === OP_IDENTIFY || f.op === OP_RESUME));
}

function lastConnectionId(gateway: LocalGateway): number {
  return gateway.connections.length === 0 ? 0 : gateway.connections[gateway.connections.length - 1].id;
}

void before(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
});

void after(async () => {
  await redis?.quit();
  await server?.stop();
});

void afterEach(async () => {
  await Promise.all(clusters.map((cluster) => cluster.down().catch(() => undefined)));
  await Promise.all(gateways.map((gateway) => gateway.close()));
  await Promise.all(stores.map((store) => store.close().catch(() => undefined)));
  for (const client of extraClients) client.disconnect();
  clusters = [];
  gateways = [];
  stores = [];
  extraClients = [];
});

void describe('RedisSessionStore batching', () => {
  void it('sends buffered writes together once per flush interval, only the latest per shard', async () => {
    const FLUSH_MS = 300;
    const keyPrefix = freshPrefix();
    // MONITOR runs on a connection of its own, which the cleanup disconnects.
    const monitor = await newClient().monitor();
    extraClients.push(monitor);
    const commands: { at: number; args: string[] }[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[1]?.startsWith(redisKey(keyPrefix, ''))) commands.push({ at: Date.now(), args });
    });
    const store = storeOn({ keyPrefix, flushIntervalMs: FLUSH_MS });
    // Make sure the store's connection is up, so that timing below is about batching, not connecting.
    await store.get(99);
    commands.length = 0;

    const start = Date.now();
    for (let round = 1; round <= 5; round++) {
      for (let shard = 0; shard < 3; shard++) await store.set(shard, session(round * 10 + shard));
    }
    expect(store.pendingWrites).toBe(3);
    // Reads see the buffered (newer) values before Redis has them.
    expect(await store.get(1)).toEqual(session(51));
    expect(await redis.exists(store.key(0), store.key(1), store.key(2))).toBe(0);

    await eventually(() => commands.filter((c) => c.args[0] === 'set').length >= 3, FLUSH_MS * 5, 'the flushed writes');
    // A read on the store's own connection after the flush: once MONITOR shows it, it has shown every write before it.
    await store.get(99);
    await eventually(() => commands.some((c) => c.args[0] === 'get' && c.args[1] === store.key(99)), 15_000, 'the marker read');
    const sets = commands.filter((c) => c.args[0] === 'set');
    // One write per shard, carrying its latest session, not one per set() call.
    expect(sets.map((c) => c.args[1]).sort()).toEqual([store.key(0), store.key(1), store.key(2)]);
    for (const shard of [0, 1, 2]) {
      expect(JSON.parse(sets.find((c) => c.args[1] === store.key(shard))!.args[2])).toEqual(session(50 + shard));
    }
    expect(Math.min(...sets.map((c) => c.at)) - start).toBeGreaterThanOrEqual(FLUSH_MS - 50);
    expect(store.pendingWrites).toBe(0);
    expect(await newStoreGet(keyPrefix, 2)).toEqual(session(52));
  });

  void it('keeps flushed sessions for a new store instance after the first one crashed', async () => {
    const keyPrefix = freshPrefix();
    const client = newClient();
    const crashed = new RedisSessionStore({ client, keyPrefix, flushIntervalMs: 100 });
    await crashed.set(0, session(1));
    await crashed.set(1, session(2, 7));
    await eventually(() => crashed.pendingWrites === 0, 15_000, 'the periodic flush');
    await eventuallyAsync(async () => (await redis.exists(crashed.key(0), crashed.key(1))) === 2, 15_000, 'the flushed sessions in Redis');
    client.disconnect(); // no close(), no flush: the process is gone

    const restarted = storeOn({ keyPrefix });
    expect(await restarted.get(0)).toEqual(session(1));
    expect(await restarted.get(1)).toEqual(session(2, 7));
    expect(await restarted.get(2)).toBeNull();
  });

  void it('flush() and close() write buffered sessions at once, long before the interval', async () => {
    const keyPrefix = freshPrefix();
    const store = storeOn({ keyPrefix, flushIntervalMs: 60_000 });
    await store.set(0, session(1));
    await store.flush();
    expect(JSON.parse((await redis.get(store.key(0)))!)).toEqual(session(1));

    await store.set(0, session(2));
    await store.set(3, session(3));
    expect(await redis.get(store.key(3))).toBeNull();
    await store.close();
    expect(await newStoreGet(keyPrefix, 0)).toEqual(session(2));
    expect(await newStoreGet(keyPrefix, 3)).toEqual(session(3));
    await expect(store.set(4, session(4))).rejects.toThrow(/closed/);
  });

  void it('delete() forgets both a buffered and a stored session', async () => {
    const keyPrefix = freshPrefix();
    const store = storeOn({ keyPrefix, flushIntervalMs: 100 });
    await store.set(0, session(1));
    await store.flush();
    await store.set(0, session(2));
    await store.delete(0);
    expect(await store.get(0)).toBeNull();
    // A session buffered after the delete reaches Redis with a periodic flush that came after the delete.
    await store.set(1, session(3));
    await eventuallyAsync(async () => (await redis.exists(store.key(1))) === 1, 15_000, 'a later flush');
    expect(await redis.exists(store.key(0))).toBe(0);
  });

  void it('leaves a client it was given open on close()', async () => {
    const client = newClient();
    const store = new RedisSessionStore({ client, keyPrefix: freshPrefix() });
    await store.set(0, session(1));
    await store.close();
    expect(await client.ping()).toBe('PONG');
  });
});

void describe('RedisSessionStore expiry', () => {
  void it('expires a session ttlMs after its last write', async () => {
    const TTL_MS = 400;
    const keyPrefix = freshPrefix();
    const store = storeOn({ keyPrefix, ttlMs: TTL_MS });
    await store.set(0, session(1));
    await store.flush();
    const ttl = await redis.pttl(store.key(0));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TTL_MS);

    // A later write renews it (Redis's own clock counts the TTL down: real time on purpose).
    await eventuallyAsync(async () => (await redis.pttl(store.key(0))) < TTL_MS / 2, 15_000, 'half the TTL gone');
    await store.set(0, session(2));
    await store.flush();
    expect(await redis.pttl(store.key(0))).toBeGreaterThan(TTL_MS / 2 + 50);

    await eventuallyAsync(async () => (await redis.exists(store.key(0))) === 0, 15_000, 'the key to expire');
    expect(await store.get(0)).toBeNull();
  });

  void it('keeps sessions for 10 minutes by default, and forever with ttlMs null', async () => {
    const byDefault = storeOn({ keyPrefix: freshPrefix() });
    await byDefault.set(0, session(1));
    await byDefault.flush();
    const ttl = await redis.pttl(byDefault.key(0));
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);

    const forever = storeOn({ keyPrefix: freshPrefix(), ttlMs: null });
    await forever.set(0, session(1));
    await forever.flush();
    expect(await redis.pttl(forever.key(0))).toBe(-1);
  });
});

void describe('Cluster with a RedisSessionStore', () => {
  void it('resumes every shard with RESUME only after downResumable(), from a new store instance on the same Redis', async () => {
    const TOTAL = 2;
    const keyPrefix = freshPrefix();
    const gateway = await startGateway({ shards: TOTAL });
    gateways.push(gateway);
    // A long flush interval: what reaches Redis is what the cluster flushed when it went down.
    const firstStore = storeOn({ keyPrefix, flushIntervalMs: 60_000 });
    const first = clusterOn(gateway, { sessionStore: firstStore, sessionSaveIntervalMs: 60_000 });
    await first.up();
    for (let shard = 0; shard < TOTAL; shard++) {
      for (let n = 0; n < 3; n++) gateway.dispatch(shard, 'MESSAGE_CREATE', { id: `${shard}-${n}` });
    }
    await eventually(() => first.info().every((info) => info.sequence === 4), 15_000, 'the events before going down');
    const sessions = await first.downResumable();
    for (let shard = 0; shard < TOTAL; shard++) {
      expect(JSON.parse((await redis.get(firstStore.key(shard)))!)).toEqual({
        sessionId: gateway.sessionOf(shard),
        sequence: 4,
        resumeUrl: gateway.resumeUrl,
        shardCount: TOTAL,
      });
    }
    await firstStore.close();

    const before = lastConnectionId(gateway);
    const second = clusterOn(gateway, { sessionStore: storeOn({ keyPrefix }) });
    await second.up();
    const handshakes = handshakesAfter(gateway, before);
    expect(handshakes.map((f) => f.op)).toEqual([OP_RESUME, OP_RESUME]);
    for (const resume of handshakes) {
      expect(resume.d.session_id).toBe(sessions[resume.shardId!].sessionId);
      expect(resume.d.seq).toBe(4);
    }
    for (const info of second.info()) {
      expect(info.state).toBe(ShardState.Ready);
      expect(info.sessionId).toBe(sessions[info.id].sessionId);
    }
  });

  void it('flushes the periodic saves so a crashed process leaves its latest sequences behind', async () => {
    const SAVE_MS = 150;
    const keyPrefix = freshPrefix();
    const gateway = await startGateway({ shards: 1 });
    gateways.push(gateway);
    const store = storeOn({ keyPrefix, flushIntervalMs: 60_000 });
    const cluster = clusterOn(gateway, { sessionStore: store, sessionSaveIntervalMs: SAVE_MS });
    await cluster.up();
    let last = 0;
    for (let n = 0; n < 5; n++) last = gateway.dispatch(0, 'MESSAGE_CREATE', { id: String(n) });
    // The store's own interval is a minute: only the cluster's flush after its periodic save can write this.
    await eventuallyAsync(
      async () => (await newStoreGet(keyPrefix, 0))?.sequence === last,
      SAVE_MS * 10,
      'the latest sequence in Redis',
    );
    expect(await newStoreGet(keyPrefix, 0)).toMatchObject({ sessionId: gateway.sessionOf(0), sequence: last });
  });

  void it('identifies instead of resuming a session saved by a bot with another shard count', async () => {
    const keyPrefix = freshPrefix();
    const gateway = await startGateway({ shards: 2 });
    gateways.push(gateway);
    const firstStore = storeOn({ keyPrefix });
    const single = clusterOn(gateway, { sessionStore: firstStore, shards: { total: 1, ids: [0] } });
    await single.up();
    const saved = await single.downResumable();
    expect((await newStoreGet(keyPrefix, 0))?.shardCount).toBe(1);

    const before = lastConnectionId(gateway);
    const resharded = clusterOn(gateway, { sessionStore: storeOn({ keyPrefix }) });
    await resharded.up();
    const handshakes = handshakesAfter(gateway, before);
    expect(handshakes.filter((f) => f.op === OP_RESUME)).toHaveLength(0);
    expect(handshakes.filter((f) => f.op === OP_IDENTIFY).map((f) => f.d.shard).sort()).toEqual([
      [0, 2],
      [1, 2],
    ]);
    expect(resharded.info().find((i) => i.id === 0)!.sessionId).not.toBe(saved[0].sessionId);
  });
});

/** Reads a session through a store instance of its own (a different process's view). */
async function newStoreGet(keyPrefix: string, shardId: number): Promise<ShardSession | null> {
  const store = new RedisSessionStore({ url: server.url, keyPrefix });
  try {
    return await store.get(shardId);
  } finally {
    await store.close();
  }
}

void describe('RedisSessionStore fenced writes (lease checked at flush, by Redis)', () => {
  void it('writes only while the lease key holds the token: a lease taken over before the flush keeps the new owner’s session', async () => {
    const keyPrefix = freshPrefix();
    const leaseKey = shardLeaseKey(keyPrefix, 0);
    await redis.set(leaseKey, 'old-owner|a');
    const log: string[] = [];
    const store = storeOn({ keyPrefix, flushIntervalMs: 60_000, fence: () => ({ key: leaseKey, token: 'old-owner|a' }), log: (l) => log.push(l) });
    await store.set(0, session(1));
    // Between the buffered write and its flush, another process claims the shard and saves its session.
    await redis.set(leaseKey, 'new-owner|b');
    await redis.set(store.key(0), JSON.stringify(session(2)));
    await store.flush();

    expect(JSON.parse((await redis.get(store.key(0)))!)).toMatchObject({ sessionId: 'session-2' });
    expect(store.fencedWrites).toBe(1);
    expect(log).toEqual(['Session store: the session of shard 0 was not written: its lease is held by another process or expired']);
    expect(store.pendingWrites).toBe(0);
  });

  void it('writes with the TTL while the lease is held, and drops the write when the fence says the lease is gone', async () => {
    const keyPrefix = freshPrefix();
    const leaseKey = shardLeaseKey(keyPrefix, 1);
    await redis.set(leaseKey, 'me|x');
    let holding = true;
    const store = storeOn({ keyPrefix, flushIntervalMs: 60_000, ttlMs: 30_000, fence: () => (holding ? { key: leaseKey, token: 'me|x' } : null) });
    await store.set(1, session(3));
    await store.flush();
    expect(JSON.parse((await redis.get(store.key(1)))!)).toMatchObject({ sessionId: 'session-3', sequence: 30 });
    expect(await redis.pttl(store.key(1))).toBeGreaterThan(29_000);

    await store.set(1, session(4));
    holding = false;
    await store.flush();
    expect(JSON.parse((await redis.get(store.key(1)))!)).toMatchObject({ sessionId: 'session-3' });
    expect(store.fencedWrites).toBe(1);
  });
});
