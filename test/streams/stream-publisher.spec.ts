import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import Redis from 'ioredis';
import { RedisStreamPublisher, STREAM_ENTRY_MAX_BYTES, WorkerGroupRegistration, type RedisStreamPublisherOptions } from '../../lib/redis';
import { DispatchFilter, type ClusterOptions, type ForwardedDispatch, type GatewayDispatch } from '../../lib/core';
import { createMessage } from '../../lib/nest/testing';
import { ClusterHarness } from '../helpers/cluster-test-kit';
import { eventually } from '../helpers/gateway-test-kit';
import { startRedisDelayProxy, type RedisDelayProxy } from '../helpers/redis-delay-proxy';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { streamEvents } from './stream-test-kit';

const harness = new ClusterHarness({ shards: 1 });
let server: RunningRedisServer;
let redis: Redis;
const closers: (() => Promise<void> | void)[] = [];

/**
 * A publisher on a cluster of the local gateway (group `a` wants MESSAGE_CREATE), whose Redis client goes through a
 * proxy that holds every publish (XADD or the script call) back `delayMs`.
 */
async function publishingThroughDelay(keyPrefix: string, delayMs: number, options: Partial<RedisStreamPublisherOptions>, clusterOptions: Partial<ClusterOptions> = {}) {
  const proxy: RedisDelayProxy = await startRedisDelayProxy(server.port, { toServer: (chunk) => (/xadd|evalsha/i.test(chunk.toString('latin1')) ? delayMs : 0) });
  const client = new Redis(proxy.url);
  closers.push(() => proxy.close(), () => client.disconnect());
  const registration = new WorkerGroupRegistration(redis, keyPrefix, 'a', ['MESSAGE_CREATE'], 30_000, () => undefined);
  await registration.start();
  closers.push(() => registration.stop());
  const warnings: string[] = [];
  const publisher = new RedisStreamPublisher({ ...options, client, keyPrefix, warn: (message) => warnings.push(message) });
  const gateway = await harness.gatewayWith();
  const cluster = harness.clusterOn(gateway, clusterOptions);
  publisher.attach(cluster, null);
  closers.push(() => void publisher.detach().catch(() => undefined));
  await cluster.up();
  await publisher.refresh();
  return { proxy, publisher, gateway, cluster, warnings };
}

void describe('RedisStreamPublisher (real redis-server, a real cluster on the local gateway)', () => {
  before(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url);
  });

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await harness.closeAll();
  });

  after(async () => {
    redis.disconnect();
    await server.stop();
  });

  void it('a Redis that does not answer never makes it buffer more than maxBuffered: the rest is dropped, counted and reported once; held events keep the saved sequence below them', async () => {
    const keyPrefix = `ndg-test:publisher:${process.pid}`;
    // Publishes are held back by the proxy for a minute: the first stays in flight for the whole test. pauseAt 0: the
    // shard never pauses, so what Redis cannot take meets the bound.
    const { proxy, publisher, gateway, warnings } = await publishingThroughDelay(keyPrefix, 60_000, { maxBuffered: 5, pauseAt: 0 });
    expect(await redis.get(`{${keyPrefix}}:dispatch:shards`)).toBe('1');

    const first = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1));
    await eventually(() => proxy.delayed.toServer >= 1, 5_000, 'the first publish in flight');
    for (let i = 2; i <= 20; i++) gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(i));
    await eventually(() => publisher.stats().droppedByBuffer === 14, 5_000, '14 events dropped');
    expect(publisher.stats()).toMatchObject({ published: 0, buffered: 5, droppedByBuffer: 14 });
    expect(warnings.filter((line) => line.includes('newer events are dropped'))).toHaveLength(1);
    // Unpublished events are unsettled for the cluster: a sequence saved now stays below the first of them.
    expect(publisher.oldestUnsettled(0)).toBe(first);
  });

  void it('a Redis slower than the events pauses the shard instead of dropping: every event is published, in sequence order, many to an entry', async () => {
    const keyPrefix = `ndg-test:publisher-pause:${process.pid}`;
    // Every publish takes 100 ms to reach Redis: events arrive much faster than they are published.
    const { publisher, gateway, cluster, warnings } = await publishingThroughDelay(keyPrefix, 100, { maxBuffered: 5 });

    const sequences: number[] = [];
    for (let i = 1; i <= 40; i++) sequences.push(gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(i)));
    await eventually(() => publisher.stats().published + publisher.stats().droppedByBuffer === 40, 20_000, 'every event published or dropped');
    expect(publisher.stats()).toMatchObject({ published: 40, droppedByBuffer: 0, buffered: 0 });
    const events = await streamEvents(redis, `{${keyPrefix}}:dispatch:0`);
    expect(events.map((event) => event.s)).toEqual(sequences);
    // What waited during a publish went in one entry with the next.
    const entries = await redis.xlen(`{${keyPrefix}}:dispatch:0`);
    expect(publisher.stats().entries).toBe(entries);
    expect(entries).toBeLessThan(40);
    expect(warnings.filter((line) => line.includes('dropped'))).toEqual([]);
    expect(cluster.shards.get(0)?.info().paused).toBe(false);
  });

  void it('registrations that are not a JSON list are ignored: the valid groups still decide what is published', async () => {
    const keyPrefix = `ndg-test:publisher-registrations:${process.pid}`;
    const { publisher } = await publishingThroughDelay(keyPrefix, 0, {});
    for (const [group, value] of [['broken', '{not json'], ['object', '{"events":["TYPING_START"]}'], ['mixed', '["GUILD_CREATE",7,null]']]) {
      await redis.sadd(`{${keyPrefix}}:workers:groups`, group);
      await redis.set(`{${keyPrefix}}:workers:group:${group}`, value, 'PX', 30_000);
    }
    await publisher.refresh();
    expect(publisher.stats().groups).toEqual(['a', 'mixed']);
    expect(publisher.wantedEvents).toEqual(['GUILD_CREATE', 'MESSAGE_CREATE']);
  });

  void it('an entry holds at most STREAM_ENTRY_MAX_BYTES of payloads: large events waiting together go in several entries, in order', async () => {
    const keyPrefix = `ndg-test:publisher-large:${process.pid}`;
    // The first publish is held 300 ms: the next five events (1.5 MiB each) wait together for the second one.
    const { publisher, gateway } = await publishingThroughDelay(keyPrefix, 300, {});
    const contents = Array.from({ length: 6 }, (_, i) => `${i}`.repeat(1_536 * 1_024));
    const sequences = contents.map((content, i) => gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(i, { content })));
    await eventually(() => publisher.stats().published === 6, 20_000, 'every event published');
    const key = `{${keyPrefix}}:dispatch:0`;
    const events = await streamEvents(redis, key);
    expect(events.map((event) => event.s)).toEqual(sequences);
    expect(events.map((event) => (event.d as { content: string }).content)).toEqual(contents);
    const perEntry = new Map<string, number[]>();
    for (const event of events) perEntry.set(event.entryId, [...(perEntry.get(event.entryId) ?? []), Buffer.byteLength(event.payload)]);
    // Two at most per entry (three would pass 4 MiB), and some entry holds two: the five that waited were split, not published one by one.
    expect([...perEntry.values()].every((sizes) => sizes.length === 1 || sizes.reduce((a, b) => a + b, 0) <= STREAM_ENTRY_MAX_BYTES)).toBe(true);
    expect(Math.max(...[...perEntry.values()].map((sizes) => sizes.length))).toBe(2);
    expect(publisher.stats().entries).toBe(perEntry.size);
  });

  void it('an event only worker groups want is published as the payload text it came as: the shard never decodes it', async () => {
    const keyPrefix = `ndg-test:publisher-forward:${process.pid}`;
    const { publisher, gateway, cluster } = await publishingThroughDelay(keyPrefix, 0, {}, { dispatchFilter: new DispatchFilter([]) });
    const decoded: GatewayDispatch[] = [];
    const forwarded: ForwardedDispatch[] = [];
    cluster.dispatch$.subscribe((event) => decoded.push(event));
    cluster.forwarded$.subscribe((event) => forwarded.push(event));

    const data = [createMessage(1, { content: 'first' }), createMessage(2, { content: 'ünïcode ✓' })];
    const sequences = data.map((d) => gateway.dispatch(0, 'MESSAGE_CREATE', d));
    await eventually(() => publisher.stats().published === 2, 10_000, 'both events published');
    const events = await streamEvents(redis, `{${keyPrefix}}:dispatch:0`);
    expect(events.map((event) => event.payload)).toEqual(data.map((d, i) => JSON.stringify({ op: 0, t: 'MESSAGE_CREATE', s: sequences[i], d })));
    expect(events.map((event) => event.d)).toEqual(data);
    expect(forwarded.map((event) => event.s)).toEqual(sequences);
    expect(decoded.filter((event) => event.t === 'MESSAGE_CREATE')).toEqual([]);
    expect(cluster.shards.get(0)?.info().sequence).toBe(sequences[1]);
  });

  void it('an event this process decodes as well is published once, with its data as JSON', async () => {
    const keyPrefix = `ndg-test:publisher-decoded:${process.pid}`;
    const { publisher, gateway, cluster } = await publishingThroughDelay(keyPrefix, 0, {}, { dispatchFilter: new DispatchFilter(['MESSAGE_CREATE']) });
    const forwarded: ForwardedDispatch[] = [];
    cluster.forwarded$.subscribe((event) => forwarded.push(event));

    const d = createMessage(1, { content: 'both' });
    const s = gateway.dispatch(0, 'MESSAGE_CREATE', d);
    await eventually(() => publisher.stats().published === 1, 10_000, 'the event published');
    const events = await streamEvents(redis, `{${keyPrefix}}:dispatch:0`);
    expect(events).toHaveLength(1);
    expect(events[0].s).toBe(s);
    // Written from the decoded data, not the frame: only `d`.
    expect(JSON.parse(events[0].payload)).toEqual({ d });
    expect(forwarded).toEqual([]);
  });

  void it('data too deeply nested to write as JSON is skipped, counted and reported once; the events after it are published', async () => {
    const keyPrefix = `ndg-test:publisher-deep:${process.pid}`;
    // Decoded here (an in-process handler wants it), so its data would be written as JSON: JSON.parse reads this
    // nesting, JSON.stringify cannot write it back.
    const { publisher, gateway, warnings } = await publishingThroughDelay(keyPrefix, 0, {}, { dispatchFilter: new DispatchFilter(['MESSAGE_CREATE']) });
    const depth = 200_000;
    gateway.dispatchJson(0, 'MESSAGE_CREATE', '['.repeat(depth) + ']'.repeat(depth));
    gateway.dispatchJson(0, 'MESSAGE_CREATE', '['.repeat(depth) + ']'.repeat(depth));
    const after = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(3, { content: 'after' }));
    await eventually(() => publisher.stats().published === 1, 10_000, 'the event after published');
    const events = await streamEvents(redis, `{${keyPrefix}}:dispatch:0`);
    expect(events.map((event) => event.s)).toEqual([after]);
    expect(publisher.stats().unencodable).toBe(2);
    expect(warnings.filter((line) => line.includes('cannot be written as JSON'))).toHaveLength(1);
  });
});
