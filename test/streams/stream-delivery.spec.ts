import { describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import Redis from 'ioredis';
import { ClusterService, GatewayModule, ShardService } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import { dataPayload, dispatchStreamKeys, encodeDispatchEntry, GatewayWorker, GatewayWorkerModule, type GatewayWorkerModuleOptions } from '../../lib/redis';
import { eventually, eventuallyAsync } from '../helpers/gateway-test-kit';
import { startRedisServer, useRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';
import * as kit from './stream-test-kit';
import { freshPrefix, handlersInto, messages, publisherOf, readByDeadWorker, streamEvents, type Handled } from './stream-test-kit';

const harness = new NestHarness();
let server: RunningRedisServer;
let redis: Redis;
let suite: { server: RunningRedisServer; redis: Redis };

/** The kit's app starters, on this file's harness and Redis. */
type AfterHarnessAndUrl<F> = F extends (harness: NestHarness, url: string, ...rest: infer Rest) => infer R ? (...rest: Rest) => R : never;
const gatewayApp: AfterHarnessAndUrl<typeof kit.gatewayApp> = (...rest) => kit.gatewayApp(harness, server.url, ...rest);
const workerApp: AfterHarnessAndUrl<typeof kit.workerApp> = (...rest) => kit.workerApp(harness, server.url, ...rest);

void describe("delivery: 'redis-streams' and GatewayWorkerModule (real redis-server, real Nest apps)", () => {
  useRedisServer((started) => {
    suite = started;
    ({ server, redis } = started);
  }, () => harness.cleanup());

  void it('each group gets every wanted event once, with the gateway context plus entry id and idempotency key; guards run; unwanted events are not published', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(gateway, keyPrefix);
    const a: Handled[] = [];
    const b: Handled[] = [];
    await workerApp(keyPrefix, 'a', handlersInto(a));
    await workerApp(keyPrefix, 'b', handlersInto(b));
    await publisherOf(app).refresh();
    expect(publisherOf(app).wantedEvents).toEqual(['MESSAGE_CREATE']);

    const sent0 = messages(gateway, 0, ['one', 'skip me', 'two']);
    const sent1 = messages(gateway, 1, ['three']);
    gateway.dispatch(0, 'TYPING_START', { channel_id: '1', user_id: '2', timestamp: 1 });
    const sent0b = messages(gateway, 0, ['four']);
    await eventually(() => a.length === 4 && b.length === 4, 10_000, 'four events handled by each group').catch((error: Error) => {
      throw new Error(`${error.message}: a ${JSON.stringify(a.map((h) => h.content))}, b ${JSON.stringify(b.map((h) => h.content))}`);
    });

    for (const handled of [a, b]) {
      expect(handled.map((h) => h.content).sort()).toEqual(['four', 'one', 'three', 'two']);
      const one = handled.find((h) => h.content === 'one')!.context;
      expect(one).toMatchObject({ event: 'MESSAGE_CREATE', shardId: 0, sequence: sent0[0], sessionId: gateway.sessionOf(0) });
      expect(one.idempotencyKey).toBe(`${gateway.sessionOf(0)}:${sent0[0]}`);
      expect(one.entryId).toMatch(/^\d+-\d+$/);
      expect(typeof one.receivedAt).toBe('number');
      expect(handled.find((h) => h.content === 'three')!.context).toMatchObject({ shardId: 1, sequence: sent1[0] });
      expect(handled.find((h) => h.content === 'four')!.context.sequence).toBe(sent0b[0]);
    }
    // Only what a group wants was published: 4 MESSAGE_CREATE on shard 0 (the guard runs in the worker), none of TYPING_START.
    const published = await streamEvents(redis, dispatchStreamKeys.stream(keyPrefix, 0));
    expect(published.map((event) => event.t)).toEqual(['MESSAGE_CREATE', 'MESSAGE_CREATE', 'MESSAGE_CREATE', 'MESSAGE_CREATE']);
    // Acknowledged after handling: nothing pending for either group.
    for (const group of ['a', 'b']) {
      await eventuallyAsync(async () => Number((await redis.xpending(dispatchStreamKeys.stream(keyPrefix, 0), group))[0]) === 0, 5_000, `group ${group} acknowledged`);
    }
  });

  void it('acknowledges an entry only once its handlers settle, and another worker takes over the entries a dead worker left pending', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(gateway, keyPrefix);
    const handled: Handled[] = [];
    let release!: () => void;
    const until = new Promise<void>((resolve) => (release = resolve));
    const worker = await workerApp(keyPrefix, 'a', handlersInto(handled, { until, when: (content) => content === 'slow' }), { claimIdleMs: 60_000 });
    await publisherOf(app).refresh();
    messages(gateway, 0, ['slow', 'fast']);
    await eventually(() => handled.some((h) => h.content === 'fast'), 10_000, 'the fast event handled');
    const key = dispatchStreamKeys.stream(keyPrefix, 0);
    await eventuallyAsync(async () => Number((await redis.xpending(key, 'a'))[0]) === 1, 5_000, 'only the slow entry pending');
    release();
    await eventually(() => handled.length === 2, 5_000, 'the slow event handled');
    await eventuallyAsync(async () => Number((await redis.xpending(key, 'a'))[0]) === 0, 5_000, 'the slow entry acknowledged');
    await harness.closeApp(worker);

    // A worker that reads and dies: its entries stay pending until a live worker claims them after claimIdleMs.
    messages(gateway, 1, ['orphan-1', 'orphan-2']);
    const key1 = dispatchStreamKeys.stream(keyPrefix, 1);
    await readByDeadWorker(redis, key1, 2);
    const entries = await redis.xlen(key1);
    expect(Number((await redis.xpending(key1, 'a'))[0])).toBe(entries);
    const rescued: Handled[] = [];
    const rescuer = await workerApp(keyPrefix, 'a', handlersInto(rescued), { claimIdleMs: 200 });
    await eventually(() => rescued.length === 2, 10_000, 'the orphaned entries handled by another worker');
    expect(rescued.map((h) => h.content)).toEqual(['orphan-1', 'orphan-2']);
    expect(rescuer.get(GatewayWorker).stats().claimed).toBe(2);
    await eventuallyAsync(async () => Number((await redis.xpending(key1, 'a'))[0]) === 0, 5_000, 'the claimed entries acknowledged');
  });

  void it('a restarted group resumes where it acknowledged: no replay, no loss', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(gateway, keyPrefix);
    const first: Handled[] = [];
    const worker = await workerApp(keyPrefix, 'a', handlersInto(first), { consumer: 'w1' });
    expect([worker.get(GatewayWorker).group, worker.get(GatewayWorker).consumerName]).toEqual(['a', 'w1']);
    await publisherOf(app).refresh();
    messages(gateway, 0, ['m1', 'm2', 'm3']);
    await eventually(() => first.length === 3, 10_000, 'three events handled');
    const key = dispatchStreamKeys.stream(keyPrefix, 0);
    await eventuallyAsync(async () => Number((await redis.xpending(key, 'a'))[0]) === 0, 5_000, 'acknowledged');
    await harness.closeApp(worker);
    // The group stays wanted (groupTtlMs) while no worker runs: events keep being published for it.
    messages(gateway, 0, ['m4', 'm5']);
    await eventuallyAsync(async () => (await streamEvents(redis, key)).length === 5, 5_000, 'five events');
    const second: Handled[] = [];
    await workerApp(keyPrefix, 'a', handlersInto(second), { consumer: 'w1' });
    await eventually(() => second.length === 2, 10_000, 'the two new events handled');
    messages(gateway, 0, ['m6']);
    await eventually(() => second.length === 3, 10_000, 'the next event handled');
    expect(second.map((h) => h.content)).toEqual(['m4', 'm5', 'm6']);
  });

  void it('a Redis that restarts empty: the worker warns once, backs off, joins the streams again and handles what follows', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(gateway, keyPrefix);
    const handled: Handled[] = [];
    const logger = new CapturingLogger();
    await workerApp(keyPrefix, 'a', handlersInto(handled), {}, logger);
    await publisherOf(app).refresh();
    messages(gateway, 0, ['before']);
    await eventually(() => handled.length === 1, 10_000, 'the first event handled');

    const port = server.port;
    await server.stop();
    // Given to the suite too, so that it is stopped after the tests.
    server = suite.server = await startRedisServer({ port });
    // The worker's next read finds no group: it warns, backs off and creates the group again; its registration
    // and the gateway process's shard count are written again at their next renewal.
    const key = dispatchStreamKeys.stream(keyPrefix, 1);
    await eventuallyAsync(async () => {
      const groups = (await redis.xinfo('GROUPS', key).catch(() => [])) as unknown[];
      return groups.length === 1 && (await redis.exists(dispatchStreamKeys.group(keyPrefix, 'a'))) === 1;
    }, 30_000, 'the group back on the stream and registered');
    await publisherOf(app).refresh();
    expect(await redis.get(dispatchStreamKeys.shardCount(keyPrefix))).toBe('2');
    messages(gateway, 1, ['after']);
    await eventually(() => handled.length === 2, 15_000, 'the event after the restart handled');
    expect(handled.map((h) => h.content)).toEqual(['before', 'after']);
    expect(logger.of('warn').filter((line) => line.message.includes('reading the streams failed'))).toHaveLength(1);
  });

  void it('a malformed entry or event is logged once, counted and skipped, the rest of its entry handled, the entry acknowledged; the worker goes on', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(gateway, keyPrefix);
    const handled: Handled[] = [];
    const logger = new CapturingLogger();
    const worker = await workerApp(keyPrefix, 'a', handlersInto(handled), {}, logger);
    await publisherOf(app).refresh();
    const key = dispatchStreamKeys.stream(keyPrefix, 1);
    const event = (s: number, payload: string) => ({ t: 'MESSAGE_CREATE', s, sessionId: 'x', receivedAt: 0, payload: Buffer.from(payload) });
    const good = (s: number, content: string) => `{"op":0,"t":"MESSAGE_CREATE","s":${s},"d":{"content":"${content}"}}`;
    const badEntries = [
      await redis.xadd(key, '*', 'garbage', 'yes'),
      await redis.xadd(key, '*', 'sh', '1', 'm', '[["MESSAGE_CREATE",5,"x",0,1', 'p', '{'),
      await redis.xadd(key, '*', 'sh', '1', 'm', '[["MESSAGE_CREATE",5,"x",0,3]]', 'p', '{"d":1}'),
      await redis.xadd(key, '*', 'sh', '-1', 'm', '[["MESSAGE_CREATE",5,"x",0,7]]', 'p', '{"d":1}'),
    ].map((id) => id!);
    // One entry whose events 1, 2 and 3 are broken, between two good ones: only those three are lost.
    const mixed = (await redis.xadd(
      key,
      '*',
      ...encodeDispatchEntry(1, [
        event(10, good(10, 'good-1')),
        event(11, '{"op":0,"t":"MESSAGE_CREATE","s":11,"d":{'),
        event(12, '{"op":0,"t":"MESSAGE_CREATE","s":12}'),
        event(-1, good(13, 'negative sequence')),
        event(14, good(14, 'good-2')),
      ]),
    ))!;
    messages(gateway, 1, ['after']);
    await eventually(() => handled.length === 3, 10_000, 'the valid events handled');
    expect(handled.map((h) => h.content)).toEqual(['good-1', 'good-2', 'after']);
    expect(handled.map((h) => h.context.sequence).slice(0, 2)).toEqual([10, 14]);
    expect(worker.get(GatewayWorker).stats().malformed).toBe(badEntries.length + 3);
    const entryWarnings = logger.of('warn').filter((line) => /is not a dispatch entry/.test(line.message));
    expect(entryWarnings.map((line) => badEntries.find((id) => line.message.includes(id)))).toEqual(badEntries);
    const eventWarnings = logger.of('warn').filter((line) => /event \d+ of entry .* is not a dispatch \(/.test(line.message));
    expect(eventWarnings.map((line) => [line.message.includes(mixed), /event (\d+)/.exec(line.message)?.[1]])).toEqual([
      [true, '1'],
      [true, '2'],
      [true, '3'],
    ]);
    await eventuallyAsync(async () => Number((await redis.xpending(key, 'a'))[0]) === 0, 5_000, 'everything acknowledged');
  });

  void it('exactlyOnce: an event published twice (a gateway process that resumed the shard) is handled once per group', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(gateway, keyPrefix);
    const once: Handled[] = [];
    const plain: Handled[] = [];
    const dedupe = await workerApp(keyPrefix, 'once', handlersInto(once), { exactlyOnce: true });
    await workerApp(keyPrefix, 'plain', handlersInto(plain));
    await publisherOf(app).refresh();
    const key = dispatchStreamKeys.stream(keyPrefix, 0);
    const event = { t: 'MESSAGE_CREATE', s: 41, sessionId: 'session-x', payload: dataPayload({ content: 'twice' }), receivedAt: Date.now() };
    await redis.xadd(key, '*', ...encodeDispatchEntry(0, [event]));
    await redis.xadd(key, '*', ...encodeDispatchEntry(0, [event]));
    messages(gateway, 0, ['marker']);
    await eventually(() => once.some((h) => h.content === 'marker') && plain.length === 3, 10_000, 'the marker handled by both groups');
    expect(plain.map((h) => h.content)).toEqual(['twice', 'twice', 'marker']);
    expect(once.map((h) => h.content)).toEqual(['twice', 'marker']);
    expect(dedupe.get(GatewayWorker).stats().duplicates).toBe(1);
  });

  void it('ShardService in a worker app sends commands through the gateway process that owns the shard', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    await gatewayApp(gateway, keyPrefix);
    const worker = await workerApp(keyPrefix, 'a', handlersInto([]));
    const from = gateway.frames.length;
    await worker.get(ShardService).setPresence({ status: PresenceUpdateStatus.DoNotDisturb, activities: [], since: null, afk: false }, 1);
    const frame = await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 5_000, from);
    expect(frame.shardId).toBe(1);
    expect((frame.d as { status: string }).status).toBe('dnd');
  });

  void it('counts and reports what the stream cap trims before a group read it, and the group lag', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const logger = new CapturingLogger();
    const app = await harness.app(
      {
        imports: [
          GatewayModule.forRoot(
            moduleOptions(gateway, {
              redis: { url: server.url },
              keyPrefix,
              shards: { total: 2, ownership: 'redis' },
              delivery: 'redis-streams',
              streams: { maxLen: 10 },
            }),
          ),
        ],
      },
      logger,
    );
    await eventually(() => app.get(ClusterService).info().filter((s) => s.state === ShardState.Ready).length === 2, 10_000, 'ready');
    // A group that registered and never reads (its app logs where the gateway app does: Nest's logger is global).
    const worker = await workerApp(keyPrefix, 'idle', handlersInto([]), {}, logger);
    await harness.closeApp(worker);
    const publisher = publisherOf(app);
    await publisher.refresh();
    expect(publisher.wantedEvents).toEqual(['MESSAGE_CREATE']);
    // `MAXLEN ~` trims whole nodes of the stream only: small nodes, so that 60 entries are enough to see it.
    await redis.config('SET', 'stream-node-max-entries', '5');
    // One event per publish (each waits for the previous one to be published): 60 entries.
    for (let i = 0; i < 60; i++) {
      messages(gateway, 0, [`m${i}`]);
      await eventually(() => publisher.stats().published === i + 1, 10_000, `event ${i} published`);
    }
    const entries = publisher.stats().entries;
    expect(entries).toBe(60);
    const stats = await publisher.readStats();
    const idle = stats.find((s) => s.group === 'idle' && s.shardId === 0)!;
    const length = await redis.xlen(dispatchStreamKeys.stream(keyPrefix, 0));
    expect(length).toBeLessThan(entries);
    expect(idle.droppedByCap).toBe(entries - length);
    expect(idle.lag).toBe(length);
    expect(logger.of('warn').some((line) => /entries of shard 0 were trimmed by the stream cap/.test(line.message) && line.message.includes(`(${entries - length} in all)`))).toBe(true);
  });

  void it('rejects invalid options at startup, naming the option', () => {
    expect(() => GatewayModule.forRoot({ token: 't', intents: 0, delivery: 'redis-streams' })).toThrow(/"delivery"/);
    expect(() => GatewayModule.forRoot({ token: 't', intents: 0, redis: { url: 'redis://127.0.0.1:1' }, delivery: 'redis-streams' })).toThrow(/"delivery".*ownership/);
    expect(() =>
      GatewayModule.forRoot({ token: 't', intents: 0, redis: { url: 'redis://127.0.0.1:1' }, shards: { total: 1, ownership: 'redis' }, streams: { maxLen: 0 } }),
    ).toThrow(/"streams.maxLen"/);
    expect(() => GatewayWorkerModule.forRoot({ redis: { url: 'redis://127.0.0.1:1' }, group: '' })).toThrow(/"group"/);
    expect(() => GatewayWorkerModule.forRoot({ redis: { url: 'redis://127.0.0.1:1' }, group: 'a', claimIdleMs: -1 })).toThrow(/"claimIdleMs"/);
    // What a JavaScript caller or a config file can pass: each fails naming the option.
    const worker = (options: unknown) => () => GatewayWorkerModule.forRoot(options as GatewayWorkerModuleOptions);
    const url = { url: 'redis://127.0.0.1:1' };
    expect(worker(null)).toThrow(/"options"/);
    expect(worker({ redis: {}, group: 'a' })).toThrow(/"redis"/);
    expect(worker({ redis: url, group: 'a', consumer: '' })).toThrow(/"consumer"/);
    expect(worker({ redis: url, group: 'a', keyPrefix: 'ndg{' })).toThrow(/"keyPrefix"/);
    expect(worker({ redis: url, group: 'a', batchSize: 1.5 })).toThrow(/"batchSize"/);
    expect(worker({ redis: url, group: 'a', exactlyOnce: 'yes' })).toThrow(/"exactlyOnce"/);
    expect(worker({ redis: url, group: 'a', exactlyOnce: { ttlMs: 5 } })).toThrow(/"exactlyOnce.ttlMs"/);
    expect(worker({ redis: url, group: 'a', exactlyOnce: { ttlMs: 60_000 }, keyPrefix: '{ndg:bot}' })).not.toThrow();
  });
});
