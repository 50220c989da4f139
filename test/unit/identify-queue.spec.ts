import { describe, it } from 'node:test';
import { expect } from 'expect';
import { InMemoryIdentifyQueue, type InMemoryIdentifyQueueOptions } from '../../lib/nest';
import { VirtualClock } from '../../lib/nest/testing';

const WINDOW_MS = 200;
/** The window plus its margin: 5 % of it, at least 50 ms. */
const SPACING_MS = 250;

interface Grant {
  shardId: number;
  at: number;
}

/** A queue of `maxConcurrency` 2 and 200 ms windows on a virtual clock, and the grants it made, with their times. */
function queueOnClock(options: InMemoryIdentifyQueueOptions = {}): {
  queue: InMemoryIdentifyQueue;
  clock: VirtualClock;
  grants: Grant[];
  ask: (shardId: number, signal?: AbortSignal) => Promise<void>;
} {
  const clock = new VirtualClock();
  const queue = new InMemoryIdentifyQueue({ maxConcurrency: 2, windowMs: WINDOW_MS, clock, ...options });
  const grants: Grant[] = [];
  const ask = (shardId: number, signal?: AbortSignal) =>
    queue.acquire(shardId, signal).then(() => {
      grants.push({ shardId, at: clock.now() });
    });
  return { queue, clock, grants, ask };
}

/** Lets the promise callbacks of the grants made so far run (they record the clock's time when they run). */
function settled(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Advances `clock` by `ms` and lets the grants made on the way be recorded. */
async function advance(clock: VirtualClock, ms: number): Promise<void> {
  clock.advance(ms);
  await settled();
}

void describe('InMemoryIdentifyQueue (maxConcurrency 2, 200 ms windows, virtual time)', () => {
  void it('spaces two grants of one key by the window plus its margin: 250 ms, not 249', async () => {
    const { clock, grants, ask } = queueOnClock();
    void ask(0);
    void ask(2); // both key 0
    await settled();
    expect(grants).toEqual([{ shardId: 0, at: 0 }]);
    await advance(clock, SPACING_MS - 1);
    expect(grants).toHaveLength(1);
    await advance(clock, 1);
    expect(grants).toEqual([
      { shardId: 0, at: 0 },
      { shardId: 2, at: SPACING_MS },
    ]);
  });

  void it('adds a margin of 5 % of the window, from 50 to 250 ms', async () => {
    for (const [windowMs, spacing] of [
      [200, 250],
      [5_000, 5_250],
      [100_000, 100_250],
    ]) {
      const { clock, grants, ask } = queueOnClock({ windowMs });
      void ask(0);
      void ask(2);
      await settled();
      await advance(clock, spacing - 1);
      expect(grants.map((g) => g.at)).toEqual([0]);
      await advance(clock, 1);
      expect(grants.map((g) => g.at)).toEqual([0, spacing]);
    }
  });

  void it('grants different keys in the same window, and the next of each key a spacing later', async () => {
    const { clock, grants, ask } = queueOnClock();
    void ask(0);
    void ask(1);
    void ask(2);
    void ask(3);
    await settled();
    await advance(clock, SPACING_MS);
    expect(grants).toEqual([
      { shardId: 0, at: 0 },
      { shardId: 1, at: 0 },
      { shardId: 2, at: SPACING_MS },
      { shardId: 3, at: SPACING_MS },
    ]);
  });

  void it('keeps request order within a key, one grant per spacing', async () => {
    const { clock, grants, ask } = queueOnClock();
    for (const id of [0, 2, 4, 6]) void ask(id);
    await settled();
    for (let i = 0; i < 3; i++) await advance(clock, SPACING_MS);
    expect(grants).toEqual([0, 2, 4, 6].map((shardId, i) => ({ shardId, at: i * SPACING_MS })));
  });

  void it('serves the waiters of one key lowest shard id first (bucket order)', async () => {
    const { clock, grants, ask } = queueOnClock();
    await ask(8); // takes the first window of key 0
    for (const id of [6, 2, 4]) void ask(id);
    for (let i = 0; i < 3; i++) await advance(clock, SPACING_MS);
    expect(grants).toEqual([8, 2, 4, 6].map((shardId, i) => ({ shardId, at: i * SPACING_MS })));
  });

  void it('keeps keys independent: a busy key does not hold up another', async () => {
    const { clock, grants, ask } = queueOnClock();
    for (const id of [0, 2, 4]) void ask(id);
    void ask(5); // key 1
    await settled();
    expect(grants).toEqual([
      { shardId: 0, at: 0 },
      { shardId: 5, at: 0 },
    ]);
    await advance(clock, SPACING_MS);
    await advance(clock, SPACING_MS);
    expect(grants.map((g) => g.shardId)).toEqual([0, 5, 2, 4]);
    expect(grants.map((g) => g.at)).toEqual([0, 0, SPACING_MS, 2 * SPACING_MS]);
  });

  void it('removes an aborted waiter, rejects it with an AbortError, and lets the next one take its window', async () => {
    const { clock, grants, ask } = queueOnClock();
    await ask(0);
    const controller = new AbortController();
    const aborted = ask(2, controller.signal);
    void ask(4);
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    await advance(clock, SPACING_MS);
    // Shard 4 got the window shard 2 gave up, not the one after it.
    expect(grants).toEqual([
      { shardId: 0, at: 0 },
      { shardId: 4, at: SPACING_MS },
    ]);
  });

  void it('rejects at once when the signal is already aborted, without using a window', async () => {
    const { grants, ask } = queueOnClock();
    await expect(ask(0, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
    await ask(0);
    expect(grants).toEqual([{ shardId: 0, at: 0 }]);
  });

  void it('ignores an abort that comes after the grant', async () => {
    const { clock, grants, ask } = queueOnClock();
    const controller = new AbortController();
    await expect(ask(1, controller.signal)).resolves.toBeUndefined();
    controller.abort();
    void ask(3);
    await advance(clock, SPACING_MS);
    expect(grants).toEqual([
      { shardId: 1, at: 0 },
      { shardId: 3, at: SPACING_MS },
    ]);
  });

  void it('waits for the session-start budget to reset, to the millisecond, then starts again from the total', async () => {
    const log: string[] = [];
    const { queue, clock, grants, ask } = queueOnClock({
      sessionStartLimit: { remaining: 1, total: 5, resetAfter: 10_000 },
      log: (line) => log.push(line),
    });
    void ask(0);
    void ask(1); // another key: only the budget holds it back
    await settled();
    expect(grants).toEqual([{ shardId: 0, at: 0 }]);
    expect(log).toEqual(['Session start limit reached: waiting 10000 ms for it to reset before identifying']);
    await advance(clock, 9_999);
    expect(grants).toHaveLength(1);
    await advance(clock, 1);
    expect(grants).toEqual([
      { shardId: 0, at: 0 },
      { shardId: 1, at: 10_000 },
    ]);
    expect(queue.remaining).toBe(4);
  });
});
