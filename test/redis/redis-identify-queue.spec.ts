import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Redis from 'ioredis';
import type { Clock } from '../../lib/core';
import { identifySpacingMs, RedisIdentifyQueue, type RedisIdentifyQueueOptions } from '../../lib/redis';
import { VirtualClock } from '../../lib/nest/testing';
import { eventually, eventuallyAsync } from '../helpers/gateway-test-kit';
import { startRedisDelayProxy } from '../helpers/redis-delay-proxy';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';

const WINDOW_MS = 200;
const SPACING_MS = identifySpacingMs(WINDOW_MS);
const ROOT = join(__dirname, '..', '..');
const WORKER = join(__dirname, 'fixtures', 'identify-worker.ts');

interface Grant {
  shardId: number;
  at: number;
  by?: string;
}

let server: RunningRedisServer;
let redis: Redis;
let queues: RedisIdentifyQueue[] = [];
let children: ChildProcess[] = [];
let prefixCount = 0;

/** A key prefix no other test uses, as if each test were a different bot. */
function freshPrefix(): string {
  return `ndg-test:identify:${process.pid}:${++prefixCount}`;
}

/** The clock each queue was given, when it was given one: grant times are read on it. */
const clocks = new WeakMap<RedisIdentifyQueue, Clock>();

function queueOn(options: Partial<RedisIdentifyQueueOptions> & { keyPrefix: string }): RedisIdentifyQueue {
  const queue = new RedisIdentifyQueue({ url: server.url, windowMs: WINDOW_MS, ...options } as RedisIdentifyQueueOptions);
  queues.push(queue);
  if (options.clock) clocks.set(queue, options.clock);
  return queue;
}

function track(queue: RedisIdentifyQueue, grants: Grant[], shardId: number, by?: string, signal?: AbortSignal): Promise<void> {
  return queue.acquire(shardId, signal).then(() => {
    grants.push({ shardId, at: clocks.get(queue)?.now() ?? Date.now(), by });
  });
}

/** Grant times of each rate-limit key, sorted. */
function timesByKey(grants: Grant[], maxConcurrency: number): Map<number, number[]> {
  const byKey = new Map<number, number[]>();
  for (const grant of grants) {
    const key = grant.shardId % maxConcurrency;
    byKey.set(key, [...(byKey.get(key) ?? []), grant.at]);
  }
  for (const times of byKey.values()) times.sort((a, b) => a - b);
  return byKey;
}

/** Smallest gap between consecutive grants of one key. */
function smallestGap(times: number[]): number {
  let gap = Infinity;
  for (let i = 1; i < times.length; i++) gap = Math.min(gap, times[i] - times[i - 1]);
  return gap;
}

function settle<T>(promise: Promise<T>): { readonly state: 'pending' | 'resolved' | 'rejected'; readonly error?: Error } {
  const result: { state: 'pending' | 'resolved' | 'rejected'; error?: Error } = { state: 'pending' };
  promise.then(
    () => (result.state = 'resolved'),
    (error: Error) => {
      result.state = 'rejected';
      result.error = error;
    },
  );
  return result;
}

/** True once Redis no longer has `key` (it expired on Redis's clock, or was deleted). */
function gone(key: string, what: string): Promise<void> {
  return eventuallyAsync(async () => (await redis.exists(key)) === 0, 10_000, what);
}

/** A worker process running the identify-worker fixture; resolves once it is connected and waiting for "go". */
async function startWorker(
  keyPrefix: string,
  maxConcurrency: number,
  shards: number[],
  mode: 'exit' | 'crash' = 'exit',
): Promise<{ child: ChildProcess; grants: Grant[]; exited: Promise<number | null>; go: () => void }> {
  const child = spawn(
    process.execPath,
    ['--require', 'ts-node/register/transpile-only', WORKER, server.url, keyPrefix, String(maxConcurrency), String(WINDOW_MS), shards.join(','), mode],
    { cwd: ROOT, env: { ...process.env, TS_NODE_PROJECT: join(ROOT, 'tsconfig.json') }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const grants: Grant[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line === 'ready') resolve();
      else if (line.startsWith('{')) {
        const grant = JSON.parse(line) as { shardId: number; at: number; pid: number };
        grants.push({ shardId: grant.shardId, at: grant.at, by: `pid ${grant.pid}` });
      }
    });
    void exited.then((code) => reject(new Error(`worker exited (${code}) before it was ready: ${stderr}`)));
  });
  // A deadline for starting a ts-node process, not a bound: a machine whose cores are busy can take a minute.
  const timeout = setTimeout(() => child.kill('SIGKILL'), 120_000);
  await ready.finally(() => clearTimeout(timeout));
  return { child, grants, exited, go: () => child.stdin!.write('go\n') };
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
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children = [];
  await Promise.all(queues.map((queue) => queue.close()));
  queues = [];
});

void describe('RedisIdentifyQueue across instances', () => {
  void it('never grants two requests of one rate-limit key in the same window, across two instances', async () => {
    const keyPrefix = freshPrefix();
    const a = queueOn({ keyPrefix, maxConcurrency: 2 });
    const b = queueOn({ keyPrefix, maxConcurrency: 2 });
    const grants: Grant[] = [];
    // Both instances ask for shards of both keys (key = shard id % 2), so each key is contended across instances.
    await Promise.all([
      ...[0, 1, 2, 3].map((id) => track(a, grants, id, 'a')),
      ...[4, 5, 6, 7].map((id) => track(b, grants, id, 'b')),
    ]);

    expect(grants.map((g) => g.shardId).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const byKey = timesByKey(grants, 2);
    for (const times of byKey.values()) {
      expect(times).toHaveLength(4);
      // Real time: Redis spaces the grants on its own clock. A lower bound, which a loaded machine can only widen.
      expect(smallestGap(times)).toBeGreaterThanOrEqual(WINDOW_MS);
    }
    // The two keys are independent: each one's first grant comes before the second grant of either.
    const order = [...grants].sort((x, y) => x.at - y.at).map((g) => g.shardId % 2);
    expect(order.slice(0, 2).sort()).toEqual([0, 1]);
    // Within one instance, the waiters of a key are served in shard-id order.
    for (const by of ['a', 'b']) {
      for (const key of [0, 1]) {
        const mine = grants.filter((g) => g.by === by && g.shardId % 2 === key);
        expect(mine.map((g) => g.shardId)).toEqual(mine.map((g) => g.shardId).sort((x, y) => x - y));
      }
    }
    // Each grant is a key in Redis that lives the window, its margin and the hold time until its IDENTIFY is reported.
    const ttl = await redis.pttl(a.grantKey(0));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(SPACING_MS + a.grantHoldMs);
  });

  void it('measures the window from the reported IDENTIFY: identified() re-arms the grant to expire a spacing later', async () => {
    const queue = queueOn({ keyPrefix: freshPrefix(), grantHoldMs: 5_000 });
    await queue.acquire(0);
    expect(await redis.pttl(queue.grantKey(0))).toBeGreaterThan(SPACING_MS + 4_000);
    queue.identified(0);
    // The re-arm goes out on the same connection before this GET, and is done when it answers.
    await queue.sessionStartsLeft();
    const ttl = await redis.pttl(queue.grantKey(0));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(SPACING_MS);
    // A second report for the same grant changes nothing.
    queue.identified(0);
    await queue.sessionStartsLeft();
    expect(await redis.pttl(queue.grantKey(0))).toBeLessThanOrEqual(ttl);
  });

  void it('gives a grant back unused when its answer took longer than grantHoldMs, and asks again', async () => {
    const log: string[] = [];
    let slowAnswers = true;
    const slow = await startRedisDelayProxy(server.port, { toClient: () => (slowAnswers ? 150 : 0) });
    try {
      const queue = queueOn({
        url: slow.url,
        keyPrefix: freshPrefix(),
        grantHoldMs: 50,
        log: (line) => {
          log.push(line);
          // Redis is fast again from the moment the late grant is noticed.
          if (line.includes('given back')) slowAnswers = false;
        },
      });
      await queue.acquire(0);
      expect(log.filter((line) => line.includes('given back and asked again'))).toHaveLength(1);
      expect(log[0]).toMatch(/a grant took \d+ ms to arrive \(over grantHoldMs 50\)/);
      // The grant in Redis is a later attempt's: the late one was deleted before asking again.
      const owner = await redis.get(queue.grantKey(0));
      expect(Number(owner!.split(':').pop())).toBeGreaterThan(1);
    } finally {
      await slow.close();
    }
  });

  void it('measures the time to a grant on its clock: a grant that arrives grantHoldMs late is used, 1 ms later given back', async () => {
    for (const [lateBy, givenBack] of [
      [50, false],
      [51, true],
    ] as const) {
      const clock = new VirtualClock();
      const log: string[] = [];
      const queue = queueOn({ keyPrefix: freshPrefix(), grantHoldMs: 50, clock, log: (line) => log.push(line) });
      const granted = queue.acquire(0);
      // Asked at 0 ms; Redis answers after the clock moved on.
      clock.advance(lateBy);
      await granted;
      expect(log).toEqual(givenBack ? ['Identify queue: a grant took 51 ms to arrive (over grantHoldMs 50); given back and asked again'] : []);
      // The grant in Redis is the first attempt's when it was used, a later attempt's when it was given back.
      const owner = await redis.get(queue.grantKey(0));
      expect(Number(owner!.split(':').pop())).toBe(givenBack ? 2 : 1);
    }
  });

  void it('keeps bots with different key prefixes independent on one Redis', async () => {
    const clock = new VirtualClock();
    const first = queueOn({ keyPrefix: freshPrefix(), grantHoldMs: 60_000, clock });
    const second = queueOn({ keyPrefix: freshPrefix(), clock });
    await first.acquire(0);
    // Granted without the clock moving: nothing made it wait.
    await second.acquire(0);
    expect(clock.now()).toBe(0);
    // The same prefix is the same bot: its next grant waits. Redis says the key is held (for the spacing and the
    // 60 s hold), and the queue looks again exactly a spacing and 1 ms later.
    const third = queueOn({ keyPrefix: first.keyPrefix, clock });
    const grants: Grant[] = [];
    void track(third, grants, 0);
    await eventually(() => clock.pending === 1, 5_000, 'the queue to wait');
    expect(clock.nextDueAt).toBe(SPACING_MS + 1);
    expect(grants).toHaveLength(0);
    // The first one's IDENTIFY is reported: its grant expires a spacing later, in Redis.
    first.identified(0);
    await gone(first.grantKey(0), 'the grant to expire');
    clock.advance(SPACING_MS);
    expect(grants).toHaveLength(0);
    clock.advance(1);
    await eventually(() => grants.length === 1, 5_000, 'the grant');
  });

  void it('blocks others at most until the lease of a grant expires when its holder dies without releasing', async () => {
    const keyPrefix = freshPrefix();
    const dying = queueOn({ keyPrefix, grantHoldMs: 1_000 });
    await dying.acquire(0);
    await dying.close(); // its process is gone: nothing is released
    // Its IDENTIFY was never reported, so the grant lives its hold time too.
    expect(await redis.pttl(dying.grantKey(0))).toBeGreaterThan(SPACING_MS);

    const clock = new VirtualClock();
    const survivor = queueOn({ keyPrefix, clock });
    const grants: Grant[] = [];
    void track(survivor, grants, 1);
    // Held for longer than a spacing: the survivor looks again a spacing and 1 ms later, and so on until it is free.
    await eventually(() => clock.pending === 1, 5_000, 'the survivor to wait');
    expect(clock.nextDueAt).toBe(SPACING_MS + 1);
    await gone(dying.grantKey(0), "the dead holder's grant to expire");
    expect(grants).toHaveLength(0);
    clock.advanceToNext();
    await eventually(() => grants.length === 1, 5_000, 'the grant');
    expect(clock.now()).toBe(SPACING_MS + 1);
  });

  void it('serves waiters of one instance in shard-id order whatever order they asked in', async () => {
    const queue = queueOn({ keyPrefix: freshPrefix() });
    const grants: Grant[] = [];
    await queue.acquire(9); // holds the only key
    await Promise.all([5, 3, 7, 1].map((id) => track(queue, grants, id)));
    expect(grants.map((g) => g.shardId)).toEqual([1, 3, 5, 7]);
    // Real time: Redis spaces the grants on its own clock. A lower bound, which a loaded machine can only widen.
    expect(smallestGap(grants.map((g) => g.at))).toBeGreaterThanOrEqual(WINDOW_MS);
  });
});

void describe('RedisIdentifyQueue session-start budget', () => {
  void it('lets one grant through with one session start left, then waits exactly as long as Redis says the budget lasts', async () => {
    const RESET_MS = 700;
    const keyPrefix = freshPrefix();
    const log: string[] = [];
    const clock = new VirtualClock();
    const queue = queueOn({
      keyPrefix,
      maxConcurrency: 2,
      sessionStartLimit: { remaining: 1, total: 5, resetAfter: RESET_MS },
      log: (line) => log.push(line),
      clock,
    });
    await queue.acquire(0);
    expect(clock.now()).toBe(0);
    expect(await queue.sessionStartsLeft()).toMatchObject({ remaining: 0 });

    // Shard 1 has its own rate-limit key, so only the budget holds it back: the queue waits what Redis reports.
    const grants: Grant[] = [];
    void track(queue, grants, 1);
    await eventually(() => clock.pending === 1, 5_000, 'the queue to wait for the budget');
    const waitMs = Number(/Session start limit reached: waiting (\d+) ms/.exec(log.join('\n'))?.[1]);
    expect(waitMs).toBeGreaterThan(0);
    expect(waitMs).toBeLessThanOrEqual(RESET_MS);
    expect(clock.nextDueAt).toBe(waitMs);

    // The budget resets in Redis (a real TTL); the queue asks again when its wait is over, not a millisecond before.
    await gone(queue.budgetKey, 'the budget to reset');
    clock.advance(waitMs - 1);
    expect(clock.pending).toBe(1);
    clock.advance(1);
    await eventually(() => grants.length === 1, 5_000, 'the grant after the reset');
    expect(grants[0].at).toBe(waitMs);
    expect(log).toContain('Session start limit reset: 5 session start(s) available');
    // It starts again from `total`, minus the grant just made, for a whole day.
    const left = await queue.sessionStartsLeft();
    expect(left?.remaining).toBe(4);
    expect(left?.resetAfter).toBeGreaterThan(86_000_000);
  });

  void it('counts the budget once for every process: a later instance does not re-initialise it', async () => {
    const keyPrefix = freshPrefix();
    const first = queueOn({ keyPrefix, maxConcurrency: 4, sessionStartLimit: { remaining: 2, total: 10, resetAfter: 60_000 } });
    await first.acquire(0);
    // A second process fetched /gateway/bot earlier and still believes 50 are left.
    const second = queueOn({ keyPrefix, maxConcurrency: 4, sessionStartLimit: { remaining: 50, total: 10, resetAfter: 60_000 } });
    await second.acquire(1);
    expect((await second.sessionStartsLeft())?.remaining).toBe(0);

    const log: string[] = [];
    const third = queueOn({ keyPrefix, maxConcurrency: 4, sessionStartLimit: { remaining: 50, total: 10, resetAfter: 60_000 }, log: (l) => log.push(l) });
    const blocked = settle(third.acquire(2));
    await eventually(() => log.some((line) => line.startsWith('Session start limit reached')), 5_000, 'the budget wait');
    expect(blocked.state).toBe('pending');
  });
});

void describe('RedisIdentifyQueue cancellation', () => {
  void it('rejects an aborted wait with an AbortError at once and serves the next waiter in its place', async () => {
    const clock = new VirtualClock();
    const queue = queueOn({ keyPrefix: freshPrefix(), clock });
    await queue.acquire(0);
    // The first grant was never reported as used: it lives its hold time (the window, by default) too.
    expect(await redis.pttl(queue.grantKey(0))).toBeGreaterThan(SPACING_MS);
    const controller = new AbortController();
    const grants: Grant[] = [];
    const aborted = track(queue, grants, 1, undefined, controller.signal);
    void track(queue, grants, 2);
    await eventually(() => clock.pending === 1, 5_000, 'the queue to wait');
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    expect(clock.now()).toBe(0);

    await gone(queue.grantKey(0), 'the first grant to expire');
    clock.advanceToNext();
    await eventually(() => grants.length === 1, 5_000, 'the next grant');
    expect(grants.map((g) => g.shardId)).toEqual([2]);
  });

  void it('rejects at once when the signal is already aborted, without taking a grant', async () => {
    const clock = new VirtualClock();
    const queue = queueOn({ keyPrefix: freshPrefix(), clock });
    await expect(queue.acquire(0, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
    expect(await redis.exists(queue.grantKey(0))).toBe(0);
    await queue.acquire(0);
    expect(clock.now()).toBe(0);
  });

  void it('gives back a grant that Redis made for a wait aborted meanwhile, with its session start', async () => {
    const queue = queueOn({ keyPrefix: freshPrefix(), sessionStartLimit: { remaining: 3, total: 3, resetAfter: 60_000 } });
    const controller = new AbortController();
    const pending = queue.acquire(0, controller.signal);
    controller.abort(); // before Redis answers
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    // Redis makes the grant, then the queue gives it back.
    await gone(queue.grantKey(0), 'the unused grant to be given back');
    expect((await queue.sessionStartsLeft())?.remaining).toBe(3);
  });

  void it('rejects every waiter when the queue is closed', async () => {
    const queue = queueOn({ keyPrefix: freshPrefix() });
    await queue.acquire(0);
    const waiter = expect(queue.acquire(1)).rejects.toThrow(/closed/);
    await queue.close();
    await waiter;
    await expect(queue.acquire(2)).rejects.toThrow(/closed/);
  });
});

void describe('RedisIdentifyQueue in separate processes', () => {
  void it('spaces the grants of each rate-limit key by a window across three processes', async () => {
    const keyPrefix = freshPrefix();
    const MAX_CONCURRENCY = 2;
    const plan = [
      [0, 3, 6],
      [1, 4, 7],
      [2, 5, 8],
    ];
    const workers = await Promise.all(plan.map((shards) => startWorker(keyPrefix, MAX_CONCURRENCY, shards)));
    for (const worker of workers) worker.go();
    const codes = await Promise.all(workers.map((worker) => worker.exited));
    expect(codes).toEqual([0, 0, 0]);

    const grants = workers.flatMap((worker) => worker.grants);
    expect(grants.map((g) => g.shardId).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const byKey = timesByKey(grants, MAX_CONCURRENCY);
    expect(byKey.get(0)).toHaveLength(5);
    expect(byKey.get(1)).toHaveLength(4);
    // Real time: Redis spaces the grants on its own clock. A lower bound, which a loaded machine can only widen.
    for (const times of byKey.values()) expect(smallestGap(times)).toBeGreaterThanOrEqual(WINDOW_MS);
    // Every process got grants of both keys, so the keys really were contended across processes.
    for (const worker of workers) {
      expect(new Set(worker.grants.map((g) => g.shardId % MAX_CONCURRENCY)).size).toBe(MAX_CONCURRENCY);
    }
  });

  void it('lets others go once the lease of a process killed right after its grant expires', async () => {
    const keyPrefix = freshPrefix();
    const doomed = await startWorker(keyPrefix, 1, [0], 'crash');
    doomed.go();
    await doomed.exited;
    expect(doomed.child.signalCode).toBe('SIGKILL');
    expect(doomed.grants).toHaveLength(1);
    const grantedAt = doomed.grants[0].at;

    const survivor = queueOn({ keyPrefix });
    await survivor.acquire(1);
    // Real time: the dead process's grant expires on Redis's clock. A lower bound, which load can only widen (how
    // soon a waiter looks again is asserted on virtual time above).
    expect(Date.now() - grantedAt).toBeGreaterThanOrEqual(WINDOW_MS);
  });
});
