import { describe, it } from 'node:test';
import { expect } from 'expect';
import { InMemoryIdentifyQueue } from '../../lib';

const WINDOW_MS = 200;

interface Grant {
  shardId: number;
  at: number;
}

function track(queue: InMemoryIdentifyQueue, grants: Grant[], shardId: number, signal?: AbortSignal): Promise<void> {
  return queue.acquire(shardId, signal).then(() => {
    grants.push({ shardId, at: Date.now() });
  });
}

void describe('InMemoryIdentifyQueue (maxConcurrency 2, 200 ms windows)', () => {
  void it('grants the first request of a key at once and the next one only a window later', async () => {
    const queue = new InMemoryIdentifyQueue({ maxConcurrency: 2, windowMs: WINDOW_MS });
    const grants: Grant[] = [];
    const start = Date.now();
    await Promise.all([track(queue, grants, 0), track(queue, grants, 2)]); // both key 0
    expect(grants.map((g) => g.shardId)).toEqual([0, 2]);
    expect(grants[0].at - start).toBeLessThan(WINDOW_MS / 2);
    expect(grants[1].at - grants[0].at).toBeGreaterThanOrEqual(WINDOW_MS - 5);
  });

  void it('grants different keys in the same window', async () => {
    const queue = new InMemoryIdentifyQueue({ maxConcurrency: 2, windowMs: WINDOW_MS });
    const grants: Grant[] = [];
    const start = Date.now();
    await Promise.all([track(queue, grants, 0), track(queue, grants, 1)]); // keys 0 and 1
    expect(grants.map((g) => g.shardId).sort()).toEqual([0, 1]);
    for (const grant of grants) expect(grant.at - start).toBeLessThan(WINDOW_MS / 2);

    // The next of each key waits for its own window.
    const second: Grant[] = [];
    await Promise.all([track(queue, second, 2), track(queue, second, 3)]);
    for (const grant of second) expect(grant.at - start).toBeGreaterThanOrEqual(WINDOW_MS - 5);
    expect(Math.abs(second[0].at - second[1].at)).toBeLessThan(WINDOW_MS / 2);
  });

  void it('keeps request order within a key, one grant per window', async () => {
    const queue = new InMemoryIdentifyQueue({ maxConcurrency: 2, windowMs: WINDOW_MS });
    const grants: Grant[] = [];
    await Promise.all([0, 2, 4, 6].map((id) => track(queue, grants, id)));
    expect(grants.map((g) => g.shardId)).toEqual([0, 2, 4, 6]);
    for (let i = 1; i < grants.length; i++) {
      expect(grants[i].at - grants[i - 1].at).toBeGreaterThanOrEqual(WINDOW_MS - 5);
    }
  });

  void it('serves the waiters of one key lowest shard id first (bucket order)', async () => {
    const queue = new InMemoryIdentifyQueue({ maxConcurrency: 2, windowMs: WINDOW_MS });
    const grants: Grant[] = [];
    await track(queue, grants, 8); // takes the first window of key 0
    await Promise.all([6, 2, 4].map((id) => track(queue, grants, id)));
    expect(grants.map((g) => g.shardId)).toEqual([8, 2, 4, 6]);
    for (let i = 1; i < grants.length; i++) {
      expect(grants[i].at - grants[i - 1].at).toBeGreaterThanOrEqual(WINDOW_MS - 5);
    }
  });

  void it('keeps keys independent: a busy key does not hold up another', async () => {
    const queue = new InMemoryIdentifyQueue({ maxConcurrency: 2, windowMs: WINDOW_MS });
    const grants: Grant[] = [];
    const start = Date.now();
    const even = Promise.all([0, 2, 4].map((id) => track(queue, grants, id)));
    await track(queue, grants, 5); // key 1
    expect(grants.map((g) => g.shardId)).toEqual([0, 5]);
    expect(grants[1].at - start).toBeLessThan(WINDOW_MS / 2);
    await even;
    expect(grants.map((g) => g.shardId)).toEqual([0, 5, 2, 4]);
  });

  void it('removes an aborted waiter, rejects it with an AbortError, and lets the next one take its place', async () => {
    const queue = new InMemoryIdentifyQueue({ maxConcurrency: 2, windowMs: WINDOW_MS });
    const grants: Grant[] = [];
    await track(queue, grants, 0);
    const controller = new AbortController();
    const aborted = track(queue, grants, 2, controller.signal);
    const next = track(queue, grants, 4);
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    await next;
    expect(grants.map((g) => g.shardId)).toEqual([0, 4]);
    // Shard 4 got the window shard 2 gave up, not the one after it.
    expect(grants[1].at - grants[0].at).toBeLessThan(2 * WINDOW_MS - 20);
    expect(grants[1].at - grants[0].at).toBeGreaterThanOrEqual(WINDOW_MS - 5);
  });

  void it('rejects at once when the signal is already aborted, without using a window', async () => {
    const queue = new InMemoryIdentifyQueue({ maxConcurrency: 2, windowMs: WINDOW_MS });
    const controller = new AbortController();
    controller.abort();
    await expect(queue.acquire(0, controller.signal)).rejects.toMatchObject({ name: 'AbortError' });
    const start = Date.now();
    await queue.acquire(0);
    expect(Date.now() - start).toBeLessThan(WINDOW_MS / 2);
  });

  void it('ignores an abort that comes after the grant', async () => {
    const queue = new InMemoryIdentifyQueue({ maxConcurrency: 2, windowMs: WINDOW_MS });
    const controller = new AbortController();
    await expect(queue.acquire(1, controller.signal)).resolves.toBeUndefined();
    controller.abort();
    const grants: Grant[] = [];
    await track(queue, grants, 3);
    expect(grants).toHaveLength(1);
  });
});
