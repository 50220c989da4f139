import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import Redis from 'ioredis';
import { GatewayModule } from '../../lib/nest';
import { InMemoryIdentifyQueue, InMemorySessionStore } from '../../lib/core';
import type { GatewayDispatch } from '../../lib/core/interfaces/gateway-dispatch.interface';
import { RedisDispatchDeduplicator } from '../../lib/redis';
import { createMessage } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { HandledEvents } from '../helpers/handled-events';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';

let server: RunningRedisServer;
let redis: Redis;
const deduplicators: RedisDispatchDeduplicator[] = [];
let prefixCount = 0;

function deduplicator(keyPrefix = `ndg-test:dedupe:${process.pid}:${++prefixCount}`): RedisDispatchDeduplicator {
  const created = new RedisDispatchDeduplicator({ url: server.url, keyPrefix });
  deduplicators.push(created);
  return created;
}

function events(shardId: number, sessionId: string, sequences: number[]): GatewayDispatch[] {
  return sequences.map((s) => ({ shardId, sessionId, t: 'MESSAGE_CREATE', s, d: null }));
}

void describe('RedisDispatchDeduplicator (real redis-server)', () => {
  before(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url);
  });

  after(async () => {
    for (const created of deduplicators) await created.close();
    redis?.disconnect();
    await server?.stop();
  });

  void it('claims each (shard, session, sequence) once across processes, in one pipelined call per batch', async () => {
    const keyPrefix = `ndg-test:dedupe:${process.pid}:shared`;
    const first = deduplicator(keyPrefix);
    const second = deduplicator(keyPrefix);
    expect(await first.claim(events(0, 'a', [1, 2, 3, 4]))).toEqual([true, true, true, true]);
    // A process resuming from sequence 2 skips what the first claimed, and claims what is new.
    expect(await second.claim([...events(0, 'a', [3, 4, 5]), ...events(1, 'a', [3]), ...events(0, 'b', [1])])).toEqual([
      false,
      false,
      true,
      true,
      true,
    ]);
    expect(await first.claim(events(0, 'a', [5, 6]))).toEqual([false, true]);
    expect(await redis.get(first.key(0, 'a'))).toBe('6');
    const ttl = await redis.pttl(first.key(0, 'a'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600_000);
  });

  void it('loads its script again after SCRIPT FLUSH without claiming twice', async () => {
    const created = deduplicator();
    expect(await created.claim(events(0, 's', [1]))).toEqual([true]);
    await redis.script('FLUSH');
    expect(await created.claim(events(0, 's', [1, 2]))).toEqual([false, true]);
  });
});

void describe('exactlyOnce with Redis unreachable', () => {
  const harness = new NestHarness();
  afterEach(() => harness.cleanup());

  void it('handles the events without claims (at least once) and says so in one WARN', async () => {
    const gateway = await harness.gateway({ shards: 1 });
    const logger = new CapturingLogger();
    const app = await harness.app(
      {
        imports: [
          GatewayModule.forRoot(
            moduleOptions(gateway, {
              // Nothing listens on port 1: only the claims need Redis here.
              redis: { url: 'redis://127.0.0.1:1', redisOptions: { maxRetriesPerRequest: null, retryStrategy: () => 200 } },
              exactlyOnce: true,
              identifyQueue: new InMemoryIdentifyQueue({ windowMs: 10 }),
              sessionStore: new InMemorySessionStore(),
            }),
          ),
        ],
        providers: [HandledEvents],
      },
      logger,
    );
    const recorder = app.get(HandledEvents);
    const sent = [1, 2, 3].map((n) => gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(n)));
    await eventually(() => recorder.handled.length === 3, 10_000, 'the three events handled');
    expect(recorder.handled).toEqual(sent.map((s) => `0#${s}`));
    const later = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(4));
    await eventually(() => recorder.handled.includes(`0#${later}`), 10_000, 'a later event handled');
    const warnings = logger.lines.filter((l) => l.level === 'warn' && l.message.includes('Exactly-once claims failed'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0].message).toContain('may repeat');
  });
});
