import { describe, it } from 'node:test';
import { expect } from 'expect';
import { Cluster, InMemorySessionStore, type IdentifyQueueFactoryOptions, type IIdentifyQueue } from '../../lib/nest';
import { VirtualClock } from '../../lib/nest/testing';

/** A session store that counts its flushes: the cluster's periodic save ends with one. */
class CountingStore extends InMemorySessionStore {
  readonly flushedAt: number[] = [];

  constructor(private readonly clock: VirtualClock) {
    super();
  }

  flush(): Promise<void> {
    this.flushedAt.push(this.clock.now());
    return Promise.resolve();
  }
}

/**
 * A cluster whose shards an ownership layer would add (it starts with none, so no socket is opened), on `clock`,
 * with a session store that records when it is flushed and the options its identify queue was built with.
 */
async function clusterOnClock(options: { sessionSaveIntervalMs?: number } = {}) {
  const clock = new VirtualClock();
  const store = new CountingStore(clock);
  const queueOptions: IdentifyQueueFactoryOptions[] = [];
  const cluster = new Cluster({
    token: 'token',
    intents: 0,
    shards: { total: 2, ownership: 'redis' },
    gatewayInfo: {
      fetch: () =>
        Promise.resolve({
          url: 'ws://127.0.0.1:1',
          shards: 2,
          session_start_limit: { total: 1_000, remaining: 1_000, reset_after: 0, max_concurrency: 1 },
        }),
    },
    identifyQueueFactory: (limits): IIdentifyQueue => {
      queueOptions.push(limits);
      return { acquire: () => Promise.resolve() };
    },
    sessionStore: store,
    clock,
    ...options,
  });
  await cluster.up();
  return { clock, store, cluster, queueOptions };
}

void describe('Cluster on a virtual clock', () => {
  void it('saves and flushes the sessions every sessionSaveIntervalMs of its clock, to the millisecond', async () => {
    const { clock, store, cluster } = await clusterOnClock({ sessionSaveIntervalMs: 5_000 });
    clock.advance(4_999);
    expect(store.flushedAt).toEqual([]);
    clock.advance(1);
    expect(store.flushedAt).toEqual([5_000]);
    clock.advance(10_000);
    expect(store.flushedAt).toEqual([5_000, 10_000, 15_000]);
    await cluster.down();
    // Stopped: no save timer is left.
    expect(clock.pending).toBe(0);
  });

  void it('saves every 60000 ms by default', async () => {
    const { clock, store, cluster } = await clusterOnClock();
    clock.advance(59_999);
    expect(store.flushedAt).toEqual([]);
    clock.advance(1);
    expect(store.flushedAt).toEqual([60_000]);
    await cluster.down();
  });

  void it('hands its clock to the identify queue it builds, and exposes it', async () => {
    const { clock, cluster, queueOptions } = await clusterOnClock();
    expect(cluster.clock).toBe(clock);
    expect(queueOptions).toHaveLength(1);
    expect(queueOptions[0].clock).toBe(clock);
    await cluster.down();
  });

  void it('refuses a clock that lacks a method, naming the option', () => {
    const clock = { now: () => 0, setTimeout: () => ({ unref: () => undefined }) };
    expect(() => new Cluster({ token: 't', intents: 0, shards: { total: 1, ownership: 'redis' }, clock: clock as never })).toThrow(
      'Invalid option "clock": must have the methods now, setTimeout, clearTimeout, setInterval and clearInterval',
    );
  });
});
