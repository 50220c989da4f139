import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Redis from 'ioredis';
import { identifySpacingMs, RedisIdentifyQueue, type RedisIdentifyQueueOptions } from '../../lib/redis';
import { startRedisDelayProxy } from '../helpers/redis-delay-proxy';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';

const WINDOW_MS = 200;
const SPACING_MS = identifySpacingMs(WINDOW_MS);
/** Scheduling slack allowed on top of a computed deadline (timers, Redis round trips, a loaded 2-core machine). */
const SLACK_MS = 250;
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

function queueOn(options: Partial<RedisIdentifyQueueOptions> & { keyPrefix: string }): RedisIdentifyQueue {
  const queue = new RedisIdentifyQueue({ url: server.url, windowMs: WINDOW_MS, ...options } as RedisIdentifyQueueOptions);
  queues.push(queue);
  return queue;
}

function track(queue: RedisIdentifyQueue, grants: Grant[], shardId: number, by?: string, signal?: AbortSignal): Promise<void> {
  return queue.acquire(shardId, signal).then(() => {
    grants.push({ shardId, at: Date.now(), by });
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
  const timeout = setTimeout(() => child.kill('SIGKILL'), 20_000);
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
    const start = Date.now();
    // Both instances ask for shards of both keys (key = shard id % 2), so each key is contended across instances.
    await Promise.all([
      ...[0, 1, 2, 3].map((id) => track(a, grants, id, 'a')),
      ...[4, 5, 6, 7].map((id) => track(b, grants, id, 'b')),
    ]);

    expect(grants.map((g) => g.shardId).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const byKey = timesByKey(grants, 2);
    for (const times of byKey.values()) {
      expect(times).toHaveLength(4);
      expect(smallestGap(times)).toBeGreaterThanOrEqual(WINDOW_MS);
    }
    // The two keys are independent: each one's first grant comes at once, in the same window.
    expect(byKey.get(0)![0] - start).toBeLessThan(WINDOW_MS);
    expect(byKey.get(1)![0] - start).toBeLessThan(WINDOW_MS);
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

  void it('keeps bots with different key prefixes independent on one Redis', async () => {
    const first = queueOn({ keyPrefix: freshPrefix() });
    const second = queueOn({ keyPrefix: freshPrefix() });
    await first.acquire(0);
    const start = Date.now();
    await second.acquire(0);
    expect(Date.now() - start).toBeLessThan(WINDOW_MS);
    // The same prefix is the same bot: its next grant waits for the window.
    const third = queueOn({ keyPrefix: first.keyPrefix });
    await third.acquire(0);
    expect(Date.now() - start).toBeGreaterThanOrEqual(WINDOW_MS - 60);
  });

  void it('blocks others at most until the lease of a grant expires when its holder dies without releasing', async () => {
    const keyPrefix = freshPrefix();
    const dying = queueOn({ keyPrefix });
    await dying.acquire(0);
    const grantedAt = Date.now();
    await dying.close(); // its process is gone: nothing is released

    const survivor = queueOn({ keyPrefix });
    await survivor.acquire(1);
    const waited = Date.now() - grantedAt;
    expect(waited).toBeGreaterThanOrEqual(WINDOW_MS);
    // Its IDENTIFY was never reported, so the grant lives its hold time too.
    expect(waited).toBeLessThanOrEqual(SPACING_MS + dying.grantHoldMs + SLACK_MS);
  });

  void it('serves waiters of one instance in shard-id order whatever order they asked in', async () => {
    const queue = queueOn({ keyPrefix: freshPrefix() });
    const grants: Grant[] = [];
    await queue.acquire(9); // holds the only key
    await Promise.all([5, 3, 7, 1].map((id) => track(queue, grants, id)));
    expect(grants.map((g) => g.shardId)).toEqual([1, 3, 5, 7]);
    expect(smallestGap(grants.map((g) => g.at))).toBeGreaterThanOrEqual(WINDOW_MS);
  });
});

void describe('RedisIdentifyQueue session-start budget', () => {
  void it('lets one grant through with one session start left, then waits for the reset and logs it', async () => {
    const RESET_MS = 700;
    const keyPrefix = freshPrefix();
    const log: string[] = [];
    const queue = queueOn({
      keyPrefix,
      maxConcurrency: 2,
      sessionStartLimit: { remaining: 1, total: 5, resetAfter: RESET_MS },
      log: (line) => log.push(line),
    });
    const start = Date.now();
    await queue.acquire(0);
    expect(Date.now() - start).toBeLessThan(WINDOW_MS);
    expect(await queue.sessionStartsLeft()).toMatchObject({ remaining: 0 });

    // Shard 1 has its own rate-limit key, so only the budget holds it back.
    const grants: Grant[] = [];
    const waiting = track(queue, grants, 1);
    await sleep(RESET_MS / 2);
    expect(grants).toHaveLength(0);
    expect(log.some((line) => /Session start limit reached: waiting \d+ ms/.test(line))).toBe(true);

    await waiting;
    expect(grants[0].at - start).toBeGreaterThanOrEqual(RESET_MS - 60);
    expect(log.some((line) => /Session start limit reset: 5 session start\(s\) available/.test(line))).toBe(true);
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
    await sleep(WINDOW_MS + 100);
    expect(blocked.state).toBe('pending');
    expect(log.some((line) => line.startsWith('Session start limit reached'))).toBe(true);
  });
});

void describe('RedisIdentifyQueue cancellation', () => {
  void it('rejects an aborted wait with an AbortError at once and serves the next waiter in its place', async () => {
    const queue = queueOn({ keyPrefix: freshPrefix() });
    await queue.acquire(0);
    const grantedAt = Date.now();
    const controller = new AbortController();
    const grants: Grant[] = [];
    const aborted = settle(track(queue, grants, 1, undefined, controller.signal));
    const next = track(queue, grants, 2);
    await sleep(30);
    controller.abort();
    await sleep(10);
    expect(aborted.state).toBe('rejected');
    expect(aborted.error?.name).toBe('AbortError');
    await next;
    expect(grants.map((g) => g.shardId)).toEqual([2]);
    expect(grants[0].at - grantedAt).toBeGreaterThanOrEqual(WINDOW_MS);
    // The first grant was never reported as used: it lives its hold time (the window, by default) too.
    expect(grants[0].at - grantedAt).toBeLessThanOrEqual(SPACING_MS + WINDOW_MS + SLACK_MS);
  });

  void it('rejects at once when the signal is already aborted, without taking a grant', async () => {
    const queue = queueOn({ keyPrefix: freshPrefix() });
    await expect(queue.acquire(0, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
    expect(await redis.exists(queue.grantKey(0))).toBe(0);
    const start = Date.now();
    await queue.acquire(0);
    expect(Date.now() - start).toBeLessThan(WINDOW_MS);
  });

  void it('gives back a grant that Redis made for a wait aborted meanwhile, with its session start', async () => {
    const queue = queueOn({ keyPrefix: freshPrefix(), sessionStartLimit: { remaining: 3, total: 3, resetAfter: 60_000 } });
    const controller = new AbortController();
    const pending = queue.acquire(0, controller.signal);
    controller.abort(); // before Redis answers
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await sleep(50);
    expect(await redis.exists(queue.grantKey(0))).toBe(0);
    expect((await queue.sessionStartsLeft())?.remaining).toBe(3);
  });

  void it('rejects every waiter when the queue is closed', async () => {
    const queue = queueOn({ keyPrefix: freshPrefix() });
    await queue.acquire(0);
    const waiter = settle(queue.acquire(1));
    await sleep(20);
    await queue.close();
    await sleep(10);
    expect(waiter.state).toBe('rejected');
    expect(waiter.error?.message).toMatch(/closed/);
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
    const waited = Date.now() - grantedAt;
    expect(waited).toBeGreaterThanOrEqual(WINDOW_MS);
    expect(waited).toBeLessThanOrEqual(SPACING_MS + WINDOW_MS + SLACK_MS);
  });
});
