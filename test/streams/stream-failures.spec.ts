import { describe, it } from 'node:test';
import { expect } from 'expect';
import { Injectable } from '@nestjs/common';
import Redis from 'ioredis';
import { OnEvent } from '../../lib/nest';
import { dispatchStreamKeys, GatewayWorker, RedisStreamConsumer, type PublishedDispatch } from '../../lib/redis';
import { eventually, eventuallyAsync } from '../helpers/gateway-test-kit';
import { useRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { CapturingLogger, NestHarness } from '../module/nest-test-kit';
import { freshPrefix, gatewayApp, handlersInto, messages, publisherOf, readByDeadWorker, workerApp, type Handled } from './stream-test-kit';

// Redis refuses one command at a time through its ACLs: a real server answering NOPERM to a worker's user, the
// way a failing or misconfigured Redis would, while everything else (and the gateway app's default user) works.

const harness = new NestHarness();
let server: RunningRedisServer;
let redis: Redis;
let userCount = 0;

/** A Redis user allowed every command but `denied`; `allow` grants them again. */
async function restrictedUser(...denied: string[]): Promise<{ url: string; allow: () => Promise<void>; refusals: (command: string) => Promise<number> }> {
  const name = `worker-${process.pid}-${++userCount}`;
  await redis.call('ACL', 'SETUSER', name, 'reset', 'on', '>secret', '~*', '&*', '+@all', ...denied.map((command) => `-${command}`));
  return {
    url: `redis://${name}:secret@127.0.0.1:${server.port}`,
    allow: async () => {
      await redis.call('ACL', 'SETUSER', name, ...denied.map((command) => `+${command}`));
    },
    // How many times Redis refused `command` to this user (ACL LOG counts repeats of one refusal).
    refusals: async (command: string) => {
      const log = (await redis.call('ACL', 'LOG', '128')) as unknown[][];
      let count = 0;
      for (const entry of log) {
        const fields = new Map<string, unknown>();
        for (let i = 0; i < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
        if (fields.get('username') === name && String(fields.get('object')).toLowerCase() === command) count += Number(fields.get('count'));
      }
      return count;
    },
  };
}

async function pendingOf(key: string, group: string): Promise<number> {
  return Number((await redis.xpending(key, group))[0]);
}

void describe('stream workers when Redis refuses commands (real redis-server with ACLs, real Nest apps)', () => {
  useRedisServer((started) => ({ server, redis } = started), () => harness.cleanup());

  void it('refused acknowledgements: warned once, the entry stays pending and is handled again, then acknowledged once Redis accepts', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(harness, server.url, gateway, keyPrefix);
    const user = await restrictedUser('xack');
    const handled: Handled[] = [];
    const logger = new CapturingLogger();
    const worker = await workerApp(harness, user.url, keyPrefix, 'a', handlersInto(handled), { claimIdleMs: 500 }, logger);
    await publisherOf(app).refresh();
    messages(gateway, 0, ['m1']);
    const key = dispatchStreamKeys.stream(keyPrefix, 0);
    // Handled, not acknowledged, claimed back after claimIdleMs, handled again, refused again.
    await eventuallyAsync(async () => handled.length >= 2 && (await user.refusals('xack')) >= 2, 15_000, 'handled twice, two refused acknowledgements');
    expect(await pendingOf(key, 'a')).toBe(1);
    const warnings = () => logger.of('warn').filter((line) => line.message.includes('acknowledging'));
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0].message).toMatch(/NOPERM/);

    await user.allow();
    await eventuallyAsync(async () => (await pendingOf(key, 'a')) === 0, 15_000, 'the entry acknowledged');
    expect(new Set(handled.map((h) => h.content))).toEqual(new Set(['m1']));
    expect(worker.get(GatewayWorker).stats().claimed).toBeGreaterThanOrEqual(1);
    expect(warnings()).toHaveLength(1);
  });

  void it('refused claim sweeps: warned once while refused, and the dead worker’s entries are taken over once Redis accepts', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(harness, server.url, gateway, keyPrefix);
    await harness.closeApp(await workerApp(harness, server.url, keyPrefix, 'a', handlersInto([])));
    await publisherOf(app).refresh();
    messages(gateway, 1, ['orphan-1', 'orphan-2']);
    const key = dispatchStreamKeys.stream(keyPrefix, 1);
    await readByDeadWorker(redis, key, 2);

    const user = await restrictedUser('xautoclaim');
    const rescued: Handled[] = [];
    const logger = new CapturingLogger();
    const rescuer = await workerApp(harness, user.url, keyPrefix, 'a', handlersInto(rescued), { claimIdleMs: 200 }, logger);
    await eventuallyAsync(async () => (await user.refusals('xautoclaim')) >= 3, 15_000, 'three refused sweeps');
    const warnings = () => logger.of('warn').filter((line) => line.message.includes('claiming idle entries failed'));
    expect(warnings()).toHaveLength(1);
    expect(rescued).toHaveLength(0);

    await user.allow();
    await eventually(() => rescued.length === 2, 15_000, 'the orphaned entries handled');
    expect(rescued.map((h) => h.content)).toEqual(['orphan-1', 'orphan-2']);
    expect(rescuer.get(GatewayWorker).stats().claimed).toBe(2);
    await eventuallyAsync(async () => (await pendingOf(key, 'a')) === 0, 5_000, 'acknowledged');
    expect(warnings()).toHaveLength(1);
  });

  void it('refused reads at start: its own pending entries are left to the claim sweep, reading backs off, and resumes once Redis accepts', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(harness, server.url, gateway, keyPrefix);
    await harness.closeApp(await workerApp(harness, server.url, keyPrefix, 'a', handlersInto([]), { consumer: 'w1' }));
    await publisherOf(app).refresh();
    messages(gateway, 0, ['left-1', 'left-2']);
    const key = dispatchStreamKeys.stream(keyPrefix, 0);
    // w1 read them and died before handling them.
    await readByDeadWorker(redis, key, 2, 'w1');

    const user = await restrictedUser('xreadgroup');
    const handled: Handled[] = [];
    const logger = new CapturingLogger();
    const worker = await workerApp(harness, user.url, keyPrefix, 'a', handlersInto(handled), { consumer: 'w1', claimIdleMs: 300 }, logger);
    await eventually(() => handled.length === 2, 15_000, 'its own pending entries handled through the claim sweep');
    expect(handled.map((h) => h.content)).toEqual(['left-1', 'left-2']);
    expect(worker.get(GatewayWorker).stats().claimed).toBe(2);
    expect(logger.of('warn').filter((line) => line.message.includes('reading own pending entries failed'))).toHaveLength(1);
    await eventuallyAsync(async () => (await user.refusals('xreadgroup')) >= 3, 15_000, 'three refused reads');
    expect(logger.of('warn').filter((line) => line.message.includes('reading the streams failed'))).toHaveLength(1);

    await user.allow();
    messages(gateway, 0, ['after']);
    await eventually(() => handled.length === 3, 15_000, 'the next event read and handled');
    expect(handled[2].content).toBe('after');
  });

  void it('a handler outliving stopTimeoutMs at the maxInFlight limit: the worker stops anyway, its entry stays pending, and another worker handles it', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(harness, server.url, gateway, keyPrefix);
    let release!: () => void;
    const until = new Promise<void>((resolve) => (release = resolve));
    const stuck: Handled[] = [];
    const worker = await workerApp(harness, server.url, keyPrefix, 'a', handlersInto(stuck, { until, when: () => true }), { stopTimeoutMs: 200, claimIdleMs: 60_000, maxInFlight: 1 });
    await publisherOf(app).refresh();
    messages(gateway, 0, ['stuck']);
    await eventually(() => worker.get(GatewayWorker).stats().inFlight === 1, 10_000, 'the handler running');
    await harness.closeApp(worker);
    const key = dispatchStreamKeys.stream(keyPrefix, 0);
    expect(await pendingOf(key, 'a')).toBe(1);

    const rescued: Handled[] = [];
    await workerApp(harness, server.url, keyPrefix, 'a', handlersInto(rescued), { claimIdleMs: 200 });
    await eventually(() => rescued.length === 1, 15_000, 'the entry handled by another worker');
    expect(rescued[0].content).toBe('stuck');
    await eventuallyAsync(async () => (await pendingOf(key, 'a')) === 0, 5_000, 'acknowledged');
    release();
  });

  void it('a worker at its maxInFlight limit takes over no more than fits: the rest stays with the dead worker until there is room', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(harness, server.url, gateway, keyPrefix);
    await harness.closeApp(await workerApp(harness, server.url, keyPrefix, 'a', handlersInto([])));
    const publisher = publisherOf(app);
    await publisher.refresh();
    // Three entries (one event each), read by a worker that dies.
    for (let i = 0; i < 3; i++) {
      messages(gateway, 0, [`orphan-${i}`]);
      await eventually(() => publisher.stats().published === i + 1, 10_000, `event ${i} published`);
    }
    const key = dispatchStreamKeys.stream(keyPrefix, 0);
    await readByDeadWorker(redis, key, 3);

    let release!: () => void;
    const until = new Promise<void>((resolve) => (release = resolve));
    const rescued: Handled[] = [];
    const rescuer = await workerApp(harness, server.url, keyPrefix, 'a', handlersInto(rescued, { until, when: () => true }), { claimIdleMs: 200, maxInFlight: 1 });
    await eventually(() => rescuer.get(GatewayWorker).stats().inFlight === 1, 10_000, 'one taken-over event running');
    // Until the other two have been idle five times claimIdleMs with the dead worker: sweeps ran meanwhile and left them.
    const idleWithDead = async () => {
      const pending = (await redis.xpending(key, 'a', '-', '+', 10)) as [string, string, number, number][];
      return pending.filter(([, consumer, idleMs]) => consumer === 'dead-worker' && idleMs >= 1_000).length;
    };
    await eventuallyAsync(async () => (await idleWithDead()) === 2, 15_000, 'two entries still with the dead worker, idle 1 s');
    expect(rescuer.get(GatewayWorker).stats().inFlight).toBe(1);

    release();
    await eventually(() => rescued.length === 3, 15_000, 'all three handled');
    expect(rescued.map((h) => h.content).sort()).toEqual(['orphan-0', 'orphan-1', 'orphan-2']);
    expect(rescuer.get(GatewayWorker).stats().claimed).toBe(3);
    await eventuallyAsync(async () => (await pendingOf(key, 'a')) === 0, 5_000, 'acknowledged');
  });

  void it('stop waits for every running handler, not only the first, and acknowledges them all', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(harness, server.url, gateway, keyPrefix);
    const releases = new Map<string, () => void>();
    const started: string[] = [];
    const finished: string[] = [];
    @Injectable()
    class Held {
      @OnEvent('MESSAGE_CREATE')
      async onMessage(message: { content: string }): Promise<void> {
        started.push(message.content);
        await new Promise<void>((resolve) => releases.set(message.content, resolve));
        finished.push(message.content);
      }
    }
    const worker = await workerApp(harness, server.url, keyPrefix, 'a', Held);
    await publisherOf(app).refresh();
    messages(gateway, 0, ['first', 'second']);
    await eventually(() => started.length === 2, 10_000, 'both handlers running');
    const key = dispatchStreamKeys.stream(keyPrefix, 0);
    let closed = false;
    const closing = harness.closeApp(worker).then(() => (closed = true));
    releases.get('first')!();
    await eventually(() => finished.length === 1, 5_000, 'the first handler settled');
    releases.get('second')!();
    await closing;
    expect(closed).toBe(true);
    expect(finished).toEqual(['first', 'second']);
    expect(await pendingOf(key, 'a')).toBe(0);
  });

  void it('a handle function that throws synchronously: logged, counted as handled, acknowledged; the next event is handled', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const app = await gatewayApp(harness, server.url, gateway, keyPrefix);
    const client = new Redis(server.url);
    const lines: string[] = [];
    const seen: string[] = [];
    const consumer = new RedisStreamConsumer({
      client,
      keyPrefix,
      group: 'plain',
      events: ['MESSAGE_CREATE'],
      log: (line) => lines.push(line),
      handle: (event: PublishedDispatch) => {
        const content = (event.d as { content: string }).content;
        if (content === 'throws') throw new Error('thrown synchronously');
        seen.push(content);
        return Promise.resolve();
      },
    });
    try {
      await consumer.start();
      await publisherOf(app).refresh();
      messages(gateway, 0, ['throws', 'after']);
      await eventually(() => seen.length === 1 && consumer.stats().handled === 2, 10_000, 'both events settled');
      expect(seen).toEqual(['after']);
      expect(lines.filter((line) => line.includes('failed: thrown synchronously'))).toHaveLength(1);
      await eventuallyAsync(async () => (await pendingOf(dispatchStreamKeys.stream(keyPrefix, 0), 'plain')) === 0, 5_000, 'both acknowledged');
    } finally {
      await consumer.stop();
      client.disconnect();
    }
  });
});
