import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import { Cluster, type ShardStateChange } from '../../lib/core/cluster/cluster';
import { GatewayOptionsError } from '../../lib/core/errors/gateway-options.error';
import type { ClusterOptions } from '../../lib/core/interfaces/cluster-options.interface';
import type { GatewayDispatch } from '../../lib/core/interfaces/gateway-dispatch.interface';
import type { ShardSession } from '../../lib/core/interfaces/shard-session.interface';
import { InMemorySessionStore } from '../../lib/core/session/in-memory-session-store';
import { ShardState } from '../../lib/core/shard/shard-state';
import type { LocalGateway, LocalGatewayOptions } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { ClusterHarness } from '../helpers/cluster-test-kit';

const OP_IDENTIFY = GatewayOpcodes.Identify;
const OP_RESUME = GatewayOpcodes.Resume;

/** An in-memory store that records every write and delete. */
class RecordingSessionStore extends InMemorySessionStore {
  readonly log: string[] = [];
  flushes = 0;

  override async set(shardId: number, session: ShardSession): Promise<void> {
    this.log.push(`set ${shardId} ${session.sequence}`);
    await super.set(shardId, session);
  }

  override async delete(shardId: number): Promise<void> {
    this.log.push(`delete ${shardId}`);
    await super.delete(shardId);
  }

  async flush(): Promise<void> {
    this.flushes++;
  }
}

const harness = new ClusterHarness({ shards: 4 }, { shards: { total: 4, ownership: 'redis' } });
const gatewayWith = (options?: LocalGatewayOptions) => harness.gatewayWith(options);
const clusterOn = (gateway: LocalGateway, options?: Partial<ClusterOptions>) => harness.clusterOn(gateway, options);

function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('Expected a rejection');
    },
    (error: unknown) => error,
  );
}

void describe('Cluster with a changing set of shards', () => {
  afterEach(async () => {
    await harness.closeAll();
  });

  void it('with shards { total, ownership } starts with no shard; addShard identifies one shard of the fixed total', async () => {
    const gateway = await gatewayWith();
    const cluster = clusterOn(gateway);
    const events: GatewayDispatch[] = [];
    cluster.dispatch$.subscribe((event) => events.push(event));
    await cluster.up();
    expect(cluster.total).toBe(4);
    expect(cluster.info()).toEqual([]);
    expect(gateway.connections).toHaveLength(0);

    await cluster.addShard(2);
    expect(cluster.has(2)).toBe(true);
    expect(gateway.framesOf(OP_IDENTIFY).map((f) => f.d.shard)).toEqual([[2, 4]]);
    expect(cluster.info().map((s) => [s.id, s.state])).toEqual([[2, ShardState.Ready]]);
    gateway.dispatch(2, 'MESSAGE_CREATE', { content: 'hi' });
    await eventually(() => events.some((e) => e.t === 'MESSAGE_CREATE' && e.shardId === 2), 15_000, 'the event');
    await cluster.send(2, { op: GatewayOpcodes.PresenceUpdate, d: { since: null, activities: [], status: PresenceUpdateStatus.Idle, afk: false } });
    await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate && f.shardId === 2, 15_000, 0);
  });

  void it('removeShard({ resumable: true }) closes with 4200, returns and stores the session; addShard resumes it from the store', async () => {
    const gateway = await gatewayWith();
    const store = new RecordingSessionStore();
    const cluster = clusterOn(gateway, { sessionStore: store });
    const states: ShardStateChange[] = [];
    cluster.state$.subscribe((change) => states.push(change));
    await cluster.up();
    await cluster.addShard(1);
    gateway.dispatch(1, 'MESSAGE_CREATE', { content: 'one' });
    await eventually(() => cluster.info()[0]?.sequence === 2, 15_000, 'the event');
    const connection = gateway.connectionOf(1)!;

    const session = await cluster.removeShard(1, { resumable: true });
    expect(session).toEqual({ sessionId: gateway.sessionOf(1), sequence: 2, resumeUrl: gateway.resumeUrl, shardCount: 4 });
    expect(connection.closeCode).toBe(4200);
    expect(cluster.has(1)).toBe(false);
    expect(cluster.info()).toEqual([]);
    expect(await store.get(1)).toEqual(session);
    expect(store.flushes).toBeGreaterThanOrEqual(1);
    expect(states.at(-1)).toEqual({ shardId: 1, state: ShardState.Disconnected });

    // Missed while nobody ran the shard: replayed on RESUME.
    const missed = gateway.dispatch(1, 'MESSAGE_CREATE', { content: 'missed' });
    const events: GatewayDispatch[] = [];
    cluster.dispatch$.subscribe((event) => events.push(event));
    await cluster.addShard(1);
    expect(gateway.framesOf(OP_IDENTIFY)).toHaveLength(1);
    expect(gateway.framesOf(OP_RESUME).map((f) => f.d.seq)).toEqual([2]);
    expect(events.filter((e) => e.t === 'MESSAGE_CREATE').map((e) => e.s)).toEqual([missed]);
  });

  void it('addShard takes an explicit session, or null to identify whatever the store holds', async () => {
    const gateway = await gatewayWith();
    const store = new RecordingSessionStore();
    const first = clusterOn(gateway, { sessionStore: store });
    await first.up();
    await first.addShard(0);
    const session = (await first.removeShard(0, { resumable: true }))!;

    const second = clusterOn(gateway, { sessionStore: new InMemorySessionStore() });
    await second.up();
    await second.addShard(0, { session });
    expect(gateway.framesOf(OP_RESUME)).toHaveLength(1);
    await second.removeShard(0, { resumable: true });

    await first.addShard(0, { session: null });
    expect(gateway.framesOf(OP_IDENTIFY)).toHaveLength(2);
  });

  void it('removeShard({ resumable: false }) ends the session with 1000 and deletes it from the store; updateStore: false leaves the store alone', async () => {
    const gateway = await gatewayWith();
    const store = new RecordingSessionStore();
    const cluster = clusterOn(gateway, { sessionStore: store });
    await cluster.up();
    await Promise.all([cluster.addShard(0), cluster.addShard(3)]);
    const connection = gateway.connectionOf(0)!;

    expect(await cluster.removeShard(0, { resumable: false })).toBeNull();
    expect(connection.closeCode).toBe(1000);
    expect(store.log).toContain('delete 0');
    expect(await store.get(0)).toBeNull();

    const writes = store.log.length;
    const session = await cluster.removeShard(3, { resumable: true, updateStore: false });
    expect(session?.sessionId).toBe(gateway.sessionOf(3));
    expect(store.log.slice(writes)).toEqual([]);
  });

  void it('added shards without a session identify in shard order through the shared queue', async () => {
    const gateway = await gatewayWith({ identifyWindowMs: 100, sessionStartLimit: { max_concurrency: 1 } });
    const cluster = clusterOn(gateway);
    await cluster.up();
    await Promise.all([cluster.addShard(3, { session: null }), cluster.addShard(1, { session: null }), cluster.addShard(2, { session: null })]);
    const identifies = gateway.framesOf(OP_IDENTIFY);
    expect(identifies.map((f) => f.shardId)).toEqual([1, 2, 3]);
    expect(gateway.identifyViolations).toBe(0);
  });

  void it('works beside a fixed scheme: a cluster of { total, ids } can add and remove shards of the same total', async () => {
    const gateway = await gatewayWith();
    const cluster = clusterOn(gateway, { shards: { total: 4, ids: [0] } });
    await cluster.up();
    await cluster.addShard(3);
    expect(cluster.info().map((s) => s.id)).toEqual([0, 3]);
    await cluster.removeShard(0, { resumable: true });
    expect([...cluster.shards.keys()]).toEqual([3]);
    const sessions = await cluster.downResumable();
    expect(Object.keys(sessions)).toEqual(['3']);
  });

  void it('refuses what it cannot do, naming the problem', async () => {
    const gateway = await gatewayWith();
    const cluster = clusterOn(gateway);
    expect(((await rejectionOf(cluster.addShard(0))) as Error).message).toMatch(/call up\(\) first/);
    await cluster.up();
    for (const bad of [-1, 4, 1.5]) {
      const error = await rejectionOf(cluster.addShard(bad));
      expect(error).toBeInstanceOf(GatewayOptionsError);
      expect((error as GatewayOptionsError).option).toBe('shardId');
    }
    const adding = cluster.addShard(1);
    expect(((await rejectionOf(cluster.addShard(1))) as Error).message).toMatch(/already run by this cluster/);
    await adding;
    expect(((await rejectionOf(cluster.removeShard(2, { resumable: true }))) as Error).message).toMatch(/not run by this cluster/);
  });

  void it('a shard removed while it waits for the identify queue gives its place up and never identifies', async () => {
    const gateway = await gatewayWith({ identifyWindowMs: 300, sessionStartLimit: { max_concurrency: 1 } });
    const cluster = clusterOn(gateway, { identifyWindowMs: 300 });
    await cluster.up();
    const first = cluster.addShard(0, { session: null });
    const second = cluster.addShard(1, { session: null }).catch((error: Error) => error);
    await first;
    await eventually(() => gateway.connections.length === 2, 15_000, 'the second connection');
    await cluster.removeShard(1, { resumable: true });
    expect(await second).toBeInstanceOf(Error);
    // Shard 2 waits behind shard 1 on the same key (lowest id first): it identifies only once shard 1 gave up.
    await cluster.addShard(2, { session: null });
    expect(gateway.framesOf(OP_IDENTIFY).map((f) => f.shardId)).toEqual([0, 2]);
  });

  void it('shards: { total, ownership } is validated, naming the option', () => {
    for (const [shards, option] of [
      [{ total: 4, ownership: 'zookeeper' }, 'shards.ownership'],
      [{ total: 4, ownership: 'redis', ids: [1] }, 'shards.ownership'],
      [{ total: 0, ownership: 'redis' }, 'shards.total'],
    ] as const) {
      let thrown: unknown;
      try {
        new Cluster({ token: 't', intents: 0, shards: shards as never });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(GatewayOptionsError);
      expect((thrown as GatewayOptionsError).option).toBe(option);
    }
  });
});
