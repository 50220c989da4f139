import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { Cluster } from '../../lib/core/cluster/cluster';
import type { ClusterOptions } from '../../lib/core/interfaces/cluster-options.interface';
import type { GatewayDispatch } from '../../lib/core/interfaces/gateway-dispatch.interface';
import type { ShardSession } from '../../lib/core/interfaces/shard-session.interface';
import { InMemorySessionStore } from '../../lib/core/session/in-memory-session-store';
import { ShardState } from '../../lib/core/shard/shard-state';
import type { LocalGateway, LocalGatewayOptions, RecordedFrame } from '../../lib/nest/testing';
import { eventually, heartbeatRoundTrip } from '../helpers/gateway-test-kit';
import { ClusterHarness } from '../helpers/cluster-test-kit';

const OP_IDENTIFY = GatewayOpcodes.Identify;
const OP_RESUME = GatewayOpcodes.Resume;

/** An in-memory store that records every write. */
class CountingSessionStore extends InMemorySessionStore {
  readonly writes: { shardId: number; session: ShardSession; at: number }[] = [];

  override async set(shardId: number, session: ShardSession): Promise<void> {
    this.writes.push({ shardId, session: { ...session }, at: Date.now() });
    await super.set(shardId, session);
  }
}

const harness = new ClusterHarness();
const gatewayWith = (options?: LocalGatewayOptions) => harness.gatewayWith(options);
const clusterOn = (gateway: LocalGateway, options?: Partial<ClusterOptions>) => harness.clusterOn(gateway, options);

/** Every dispatch the cluster emits, in order. */
function record(cluster: Cluster): GatewayDispatch[] {
  const events: GatewayDispatch[] = [];
  cluster.dispatch$.subscribe((event) => events.push(event));
  return events;
}

/** Handshake frames (IDENTIFY, RESUME) sent on connections opened after `afterConnectionId`. */
function handshakesAfter(gateway: LocalGateway, afterConnectionId: number): RecordedFrame[] {
  return gateway.frames.filter((f) => f.connectionId > afterConnectionId && (f.op === OP_IDENTIFY || f.op === OP_RESUME));
}

function lastConnectionId(gateway: LocalGateway): number {
  return gateway.connections.length === 0 ? 0 : gateway.connections[gateway.connections.length - 1].id;
}

void afterEach(async () => {
  await harness.closeAll();
});

void describe('Cluster sessions across restarts', () => {
  void it('downResumable() returns every session; a new cluster on the same store resumes and replays in order', async () => {
    const TOTAL = 3;
    const gateway = await gatewayWith({ shards: TOTAL });
    const store = new InMemorySessionStore();
    const first = clusterOn(gateway, { sessionStore: store });
    await first.up();
    for (let shard = 0; shard < TOTAL; shard++) {
      for (let n = 0; n < 3; n++) gateway.dispatch(shard, 'MESSAGE_CREATE', { id: `before-${shard}-${n}` });
    }
    await eventually(
      () => first.info().every((info) => info.sequence === 4),
      2_000,
      'the events sent before going down',
    );

    const sessions = await first.downResumable();
    expect(Object.keys(sessions).map(Number).sort()).toEqual([0, 1, 2]);
    for (let shard = 0; shard < TOTAL; shard++) {
      expect(sessions[shard]).toEqual({ sessionId: gateway.sessionOf(shard), sequence: 4, resumeUrl: gateway.resumeUrl });
      expect(await store.get(shard)).toMatchObject({ sessionId: gateway.sessionOf(shard), sequence: 4, shardCount: TOTAL });
    }
    expect(first.info()).toHaveLength(0);
    // The sessions stay open on the gateway side: every client close was resumable.
    for (const connection of gateway.connections) expect([1000, 1001]).not.toContain(connection.closeCode);

    // Events that happen while the bot is down are kept for replay.
    const missed = new Map<number, number[]>();
    for (let shard = 0; shard < TOTAL; shard++) {
      const seqs: number[] = [];
      for (let n = 0; n < 4 + shard; n++) seqs.push(gateway.dispatch(shard, 'MESSAGE_CREATE', { id: `missed-${shard}-${n}` }));
      missed.set(shard, seqs);
    }

    const before = lastConnectionId(gateway);
    const second = clusterOn(gateway, { sessionStore: store });
    const events = record(second);
    await second.up();

    const handshakes = handshakesAfter(gateway, before);
    expect(handshakes.filter((f) => f.op === OP_IDENTIFY)).toHaveLength(0);
    const resumes = handshakes.filter((f) => f.op === OP_RESUME);
    expect(resumes.map((f) => f.shardId).sort()).toEqual([0, 1, 2]);
    for (const resume of resumes) {
      expect(resume.d.session_id).toBe(sessions[resume.shardId!].sessionId);
      expect(resume.d.seq).toBe(4);
    }
    for (const connection of gateway.connections.filter((c) => c.id > before)) expect(connection.path).toBe('/resume');

    for (let shard = 0; shard < TOTAL; shard++) {
      const mine = events.filter((e) => e.shardId === shard);
      const expected = missed.get(shard)!;
      // Exactly the missed events, in order, then RESUMED.
      expect(mine.map((e) => e.s)).toEqual([...expected, expected[expected.length - 1] + 1]);
      expect(mine.slice(0, -1).map((e) => (e.d as { id: string }).id)).toEqual(
        expected.map((_, n) => `missed-${shard}-${n}`),
      );
      expect(mine[mine.length - 1].t).toBe('RESUMED');
    }
    for (const info of second.info()) {
      expect(info.state).toBe(ShardState.Ready);
      expect(info.sessionId).toBe(sessions[info.id].sessionId);
    }
  });

  void it('identifies instead of resuming sessions saved with a different shard count', async () => {
    const gateway = await gatewayWith({ shards: 2 });
    const store = new InMemorySessionStore();
    const single = clusterOn(gateway, { sessionStore: store, shards: { total: 1, ids: [0] } });
    await single.up();
    const saved = await single.downResumable();
    expect(saved[0].sessionId).toBe(gateway.sessionOf(0));
    expect((await store.get(0))?.shardCount).toBe(1);

    const before = lastConnectionId(gateway);
    const resharded = clusterOn(gateway, { sessionStore: store });
    const debug: string[] = [];
    resharded.debug$.subscribe((entry) => debug.push(entry.message));
    await resharded.up();

    const handshakes = handshakesAfter(gateway, before);
    expect(handshakes.filter((f) => f.op === OP_RESUME)).toHaveLength(0);
    expect(handshakes.filter((f) => f.op === OP_IDENTIFY).map((f) => f.d.shard).sort()).toEqual([
      [0, 2],
      [1, 2],
    ]);
    expect(debug.some((line) => /ignoring a saved session of a 1-shard bot/.test(line))).toBe(true);
    expect(resharded.info().find((i) => i.id === 0)!.sessionId).not.toBe(saved[0].sessionId);
    // The store now holds the new sessions.
    expect((await store.get(0))?.shardCount).toBe(2);
  });

  void it('resumes a session whose store entry has no shard count', async () => {
    const gateway = await gatewayWith({ shards: 1 });
    const store = new InMemorySessionStore();
    const first = clusterOn(gateway, { sessionStore: store });
    await first.up();
    const sessions = await first.downResumable();
    await store.set(0, { sessionId: sessions[0].sessionId, sequence: sessions[0].sequence, resumeUrl: sessions[0].resumeUrl });

    const before = lastConnectionId(gateway);
    const second = clusterOn(gateway, { sessionStore: store });
    await second.up();
    expect(handshakesAfter(gateway, before).map((f) => f.op)).toEqual([OP_RESUME]);
  });

  void it('down() ends the sessions and forgets them, so the next cluster identifies', async () => {
    const gateway = await gatewayWith({ shards: 2 });
    const store = new InMemorySessionStore();
    const first = clusterOn(gateway, { sessionStore: store });
    await first.up();
    expect(await store.get(0)).not.toBeNull();
    await first.down();
    expect(await store.get(0)).toBeNull();
    expect(await store.get(1)).toBeNull();
    await eventually(() => gateway.connections.every((c) => c.closeCode === 1000), 15_000, 'every connection to close with 1000');

    const before = lastConnectionId(gateway);
    const second = clusterOn(gateway, { sessionStore: store });
    await second.up();
    const handshakes = handshakesAfter(gateway, before);
    expect(handshakes.map((f) => f.op)).toEqual([OP_IDENTIFY, OP_IDENTIFY]);
  });
});

void describe('Cluster session saving', () => {
  void it('does not write the store on every event', async () => {
    const gateway = await gatewayWith({ shards: 2 });
    const store = new CountingSessionStore();
    const cluster = clusterOn(gateway, { sessionStore: store, sessionSaveIntervalMs: 60_000 });
    const events = record(cluster);
    await cluster.up();
    const handshakes = events.filter((e) => e.t === 'READY' || e.t === 'RESUMED').length;
    expect(handshakes).toBe(2);

    const seqs: number[] = [];
    for (let n = 0; n < 100; n++) seqs.push(gateway.dispatch(n % 2, 'MESSAGE_CREATE', { id: String(n) }));
    await eventually(() => events.filter((e) => e.t === 'MESSAGE_CREATE').length === 100, 15_000, '100 events');
    // Both shards read a frame sent after the events: a write made for an event would have been made by now.
    await Promise.all([heartbeatRoundTrip(gateway, 0), heartbeatRoundTrip(gateway, 1)]);
    expect(store.writes.length).toBeGreaterThanOrEqual(handshakes);
    expect(store.writes.length).toBeLessThanOrEqual(handshakes + 2);
    // What was written on READY carries READY's sequence.
    for (const write of store.writes) expect(write.session.sequence).toBe(1);
  });

  void it('saves every ready shard periodically with its latest sequence', async () => {
    const SAVE_MS = 200;
    const gateway = await gatewayWith({ shards: 2 });
    const store = new CountingSessionStore();
    const cluster = clusterOn(gateway, { sessionStore: store, sessionSaveIntervalMs: SAVE_MS });
    const events = record(cluster);
    await cluster.up();
    const afterReady = store.writes.length;

    let last0 = 0;
    let last1 = 0;
    for (let n = 0; n < 40; n++) {
      if (n % 2 === 0) last0 = gateway.dispatch(0, 'MESSAGE_CREATE', { id: String(n) });
      else last1 = gateway.dispatch(1, 'MESSAGE_CREATE', { id: String(n) });
    }
    await eventually(() => events.filter((e) => e.t === 'MESSAGE_CREATE').length === 40, 15_000, '40 events');
    await eventually(
      () =>
        store.writes.some((w) => w.shardId === 0 && w.session.sequence === last0) &&
        store.writes.some((w) => w.shardId === 1 && w.session.sequence === last1),
      SAVE_MS * 5,
      'a periodic save with the latest sequences',
    );
    expect((await store.get(0))?.sequence).toBe(last0);
    expect((await store.get(1))?.sequence).toBe(last1);
    expect((await store.get(0))?.sessionId).toBe(gateway.sessionOf(0));

    // It keeps saving while nothing happens (two more saves per shard), once per interval per shard, not per event.
    const counted = store.writes.length;
    const periodicOf = (shardId: number) => store.writes.slice(counted).filter((w) => w.shardId === shardId);
    await eventually(() => periodicOf(0).length >= 2 && periodicOf(1).length >= 2, SAVE_MS * 20, 'two periodic saves per shard');
    for (const shardId of [0, 1]) {
      const saves = periodicOf(shardId).map((w) => w.at);
      // A timer never fires early: saves of one shard are at least an interval apart (1 ms of timer rounding).
      for (let i = 1; i < saves.length; i++) expect(saves[i] - saves[i - 1]).toBeGreaterThanOrEqual(SAVE_MS - 1);
    }
    expect(store.writes.length - afterReady).toBeLessThan(40);
  });

  void it('stops saving after down()', async () => {
    const SAVE_MS = 100;
    const gateway = await gatewayWith();
    const store = new CountingSessionStore();
    const cluster = clusterOn(gateway, { sessionStore: store, sessionSaveIntervalMs: SAVE_MS });
    // A second cluster that saves on the same interval is the clock: its saves prove that intervals went by.
    const witnessStore = new CountingSessionStore();
    const witness = clusterOn(await gatewayWith(), { sessionStore: witnessStore, sessionSaveIntervalMs: SAVE_MS });
    await Promise.all([cluster.up(), witness.up()]);
    await cluster.down();
    const writes = store.writes.length;
    const witnessed = witnessStore.writes.length;
    await eventually(() => witnessStore.writes.length >= witnessed + 3, SAVE_MS * 30, 'three saves of the witness');
    expect(store.writes.length).toBe(writes);
    expect(await store.get(0)).toBeNull();
  });
});
