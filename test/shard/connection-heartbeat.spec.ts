import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import { ShardState, type IIdentifyQueue, type Shard, type ShardOptions } from '../../lib/nest';
import { VirtualClock, type LocalGateway, type LocalGatewayConnection, type LocalGatewayOptions, type RecordedFrame } from '../../lib/nest/testing';
import { createShard, eventually, nextDispatch, startGateway, waitFor } from '../helpers/gateway-test-kit';

const HEARTBEAT = GatewayOpcodes.Heartbeat;
const IDENTIFY = GatewayOpcodes.Identify;
const RESUME = GatewayOpcodes.Resume;

let gateways: LocalGateway[] = [];
let shards: Shard[] = [];

async function gatewayWith(options: LocalGatewayOptions = {}): Promise<LocalGateway> {
  const gateway = await startGateway(options);
  gateways.push(gateway);
  return gateway;
}

function shardOn(gateway: LocalGateway, options: Partial<ShardOptions> = {}): Shard {
  const shard = createShard(gateway, options);
  shards.push(shard);
  return shard;
}

/** Starts connecting; the returned promise never causes an unhandled rejection if the test ends early. */
function connectQuietly(shard: Shard): Promise<void> {
  const ready = shard.connect();
  ready.catch(() => undefined);
  return ready;
}

/** Frames with opcode `op` that arrived on one connection. */
function framesOn(connection: LocalGatewayConnection, op: number): RecordedFrame[] {
  return connection.frames.filter((f) => f.op === op);
}

/**
 * Makes sure the gateway has recorded every frame the shard wrote so far: sends a presence update behind them and
 * waits for it (frames of one connection arrive in order). The shard must be ready.
 */
async function flush(gateway: LocalGateway, shard: Shard): Promise<void> {
  const marker = gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate);
  await shard.send({ op: GatewayOpcodes.PresenceUpdate, d: { since: null, activities: [], status: PresenceUpdateStatus.Online, afk: false } });
  await marker;
}

/**
 * Advances `clock` to `at` (ms of virtual time), which must be when the shard's next heartbeat is due, and resolves
 * with that heartbeat once the gateway recorded it and, unless `acked` is false, once the shard took its ACK.
 */
async function beatAt(gateway: LocalGateway, shard: Shard, clock: VirtualClock, at: number, acked = true): Promise<RecordedFrame> {
  const roundTrips = shard.latencyStats.recent.length;
  const beat = gateway.waitForFrame((f) => f.op === HEARTBEAT);
  clock.advance(at - clock.now());
  const frame = await beat;
  // The tracker keeps five round trips: past five, the count no longer shows a new ACK.
  if (acked) await eventually(() => shard.latencyStats.recent.length > Math.min(roundTrips, 4), 3_000, `the ACK of the heartbeat at ${at} ms`);
  return frame;
}

/** An identify queue that grants immediately. */
const immediateQueue: IIdentifyQueue = { acquire: () => Promise.resolve() };

/** An identify queue that holds every request until `release()`; aborts reject the pending request. */
function gatedQueue(): IIdentifyQueue & { calls: number[]; release: () => void } {
  const pending: (() => void)[] = [];
  let open = false;
  return {
    calls: [],
    acquire(shardId: number, signal?: AbortSignal): Promise<void> {
      this.calls.push(shardId);
      if (open) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        pending.push(resolve);
        signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
    },
    release(): void {
      open = true;
      for (const resolve of pending.splice(0)) resolve();
    },
  };
}

void afterEach(async () => {
  for (const shard of shards) await shard.close();
  for (const gateway of gateways) {
    gateway.behaviour.sendHello = true;
    gateway.behaviour.answerHandshake = true;
    gateway.behaviour.acks = true;
    await gateway.close();
  }
  shards = [];
  gateways = [];
});

void describe('Shard connection URL and headers', () => {
  void it('connects with v=10, encoding=json and compress=zlib-stream by default and sends a DiscordBot User-Agent', async () => {
    const gateway = await gatewayWith();
    const shard = shardOn(gateway);
    await shard.connect();

    const connection = gateway.connections[0];
    expect(connection.query.get('v')).toBe('10');
    expect(connection.query.get('encoding')).toBe('json');
    expect(connection.query.get('compress')).toBe('zlib-stream');
    expect(String(connection.headers['user-agent'])).toMatch(/^DiscordBot \(/);

    const id = gateway.dispatch(0, 'MESSAGE_CREATE', { id: '1', content: 'compressed' });
    const event = await nextDispatch(shard, 'MESSAGE_CREATE');
    expect(event).toMatchObject({ s: id, d: { content: 'compressed' } });
  });

  void it('leaves out compress when compression is disabled and works with plain-text frames', async () => {
    const gateway = await gatewayWith();
    const shard = shardOn(gateway, { compression: false });
    await shard.connect();

    const connection = gateway.connections[0];
    expect(connection.query.has('compress')).toBe(false);
    expect(connection.query.get('v')).toBe('10');
    expect(connection.query.get('encoding')).toBe('json');
    expect(String(connection.headers['user-agent'])).toMatch(/^DiscordBot \(/);

    const seq = gateway.dispatch(0, 'MESSAGE_CREATE', { id: '2', content: 'plain' });
    const event = await nextDispatch(shard, 'MESSAGE_CREATE');
    expect(event).toMatchObject({ s: seq, d: { content: 'plain' } });
    expect(shard.state).toBe(ShardState.Ready);
  });
});

void describe('Shard heartbeating, in virtual time', () => {
  for (const [random, firstAt] of [
    [0, 0],
    [0.25, 250],
    [0.5, 500],
    [0.999, 999],
  ] as const) {
    void it(`random() = ${random}: first heartbeat exactly ${firstAt} ms after HELLO (interval * random()), then one every 1000 ms`, async () => {
      const gateway = await gatewayWith({ heartbeatInterval: 1_000 });
      const clock = new VirtualClock();
      const shard = shardOn(gateway, { random: () => random, clock });
      await shard.connect();
      const connection = gateway.connections[0];

      if (firstAt > 0) {
        clock.advance(firstAt - 1);
        await flush(gateway, shard);
        expect(framesOn(connection, HEARTBEAT)).toHaveLength(0);
      }
      await beatAt(gateway, shard, clock, firstAt);
      expect(framesOn(connection, HEARTBEAT)).toHaveLength(1);

      clock.advance(firstAt + 999 - clock.now());
      await flush(gateway, shard);
      expect(framesOn(connection, HEARTBEAT)).toHaveLength(1);
      await beatAt(gateway, shard, clock, firstAt + 1_000);
      await beatAt(gateway, shard, clock, firstAt + 2_000);
      expect(framesOn(connection, HEARTBEAT)).toHaveLength(3);
      expect(shard.state).toBe(ShardState.Ready);
    });
  }

  void it('heartbeats with d = null before any dispatch and keeps beating while the identify queue holds the shard', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 1_000 });
    const clock = new VirtualClock();
    const queue = gatedQueue();
    const shard = shardOn(gateway, { random: () => 0.5, identifyQueue: queue, clock });
    const ready = connectQuietly(shard);

    await waitFor(shard.state$, (s) => s === ShardState.Identifying);
    const connection = gateway.connections[0];
    for (const at of [500, 1_500, 2_500]) await beatAt(gateway, shard, clock, at);

    expect(queue.calls).toEqual([0]);
    expect(framesOn(connection, IDENTIFY)).toHaveLength(0);
    expect(shard.state).toBe(ShardState.Identifying);
    const beatsWhileQueued = framesOn(connection, HEARTBEAT);
    expect(beatsWhileQueued.map((beat) => beat.d)).toEqual([null, null, null]);

    queue.release();
    await ready;
    const identify = framesOn(connection, IDENTIFY);
    expect(identify).toHaveLength(1);
    expect(connection.frames.indexOf(identify[0])).toBeGreaterThan(connection.frames.indexOf(beatsWhileQueued[2]));
  });

  void it('heartbeats with the last sequence number once dispatches arrived', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 1_000 });
    const clock = new VirtualClock();
    const shard = shardOn(gateway, { random: () => 0.5, clock });
    await shard.connect();

    gateway.dispatch(0, 'MESSAGE_CREATE', { id: '1' });
    gateway.dispatch(0, 'MESSAGE_CREATE', { id: '2' });
    const last = gateway.dispatch(0, 'TYPING_START', { channel_id: '3' });
    await nextDispatch(shard, 'TYPING_START');
    expect(last).toBeGreaterThan(1);

    const beat = await beatAt(gateway, shard, clock, 500);
    expect(beat.d).toBe(last);
  });

  void it('answers a server heartbeat request (op 1) at once, without waiting for the schedule', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 5_000 });
    const clock = new VirtualClock();
    const shard = shardOn(gateway, { random: () => 0.9, clock });
    await shard.connect();

    const connection = gateway.connections[0];
    expect(framesOn(connection, HEARTBEAT)).toHaveLength(0);
    gateway.requestHeartbeat(0);
    const beat = await gateway.waitForFrame((f) => f.op === HEARTBEAT, 2_000);
    // The clock never moved: the scheduled beat (at 4500 ms) cannot have sent it.
    expect(clock.now()).toBe(0);
    expect(beat.connectionId).toBe(connection.id);
    expect(beat.d).toBe(shard.info().sequence);
  });

  void it('ignores a heartbeat ACK that answers no heartbeat', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 5_000 });
    const shard = shardOn(gateway, { random: () => 0.9, clock: new VirtualClock() });
    await shard.connect();

    gateway.sendPayload(0, { op: GatewayOpcodes.HeartbeatAck });
    gateway.dispatch(0, 'TYPING_START', { channel_id: '1' });
    await nextDispatch(shard, 'TYPING_START');
    expect(shard.latencyStats).toEqual({ last: null, average: null, recent: [] });
    expect(shard.state).toBe(ShardState.Ready);
  });
});

void describe('Shard zombie connections, in virtual time', () => {
  void it('drops a connection at the exact beat that finds the last heartbeat unacknowledged, and resumes with the last sequence', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 1_000 });
    const clock = new VirtualClock();
    const shard = shardOn(gateway, { random: () => 0.5, clock });
    await shard.connect();
    const sessionId = shard.session!.sessionId;

    gateway.dispatch(0, 'MESSAGE_CREATE', { id: '1' });
    const last = gateway.dispatch(0, 'MESSAGE_CREATE', { id: '2' });
    await waitFor(shard.dispatch$, (e) => e.s === last);

    const old = gateway.connections[0];
    await beatAt(gateway, shard, clock, 500);
    gateway.setAcks(0, false);
    // The beat at 1500 ms goes unanswered; the next one, at 2500 ms, finds it so and reconnects instead of beating.
    const unanswered = gateway.waitForFrame((f) => f.op === HEARTBEAT && f.connectionId === old.id);
    clock.advance(1_000);
    expect((await unanswered).d).toBe(last);
    clock.advance(999);
    expect(shard.state).toBe(ShardState.Ready);
    expect(shard.counters.reconnectsByReason.get('zombie')).toBeUndefined();

    const next = gateway.waitForConnection(() => true, 3_000);
    clock.advance(1);
    expect(shard.counters.reconnectsByReason.get('zombie')).toBe(1);
    expect(shard.info().lastError).toContain('zombie');
    // The first reconnect after a healthy connection waits 0 ms: the new connection opens at the same tick.
    expect(shard.state).toBe(ShardState.Connecting);
    const connection = await next;
    const resume = await gateway.waitForFrame((f) => f.op === RESUME && f.connectionId === connection.id, 3_000, 0);
    await waitFor(shard.state$, (s) => s === ShardState.Ready);

    expect(framesOn(old, HEARTBEAT)).toHaveLength(2);
    await eventually(() => old.closeCode !== null, 2_000, 'the zombie connection to close');
    expect(old.closedByServer).toBe(false);
    expect([1000, 1001]).not.toContain(old.closeCode);

    expect(connection.path).toBe('/resume');
    expect(connection.query.get('v')).toBe('10');
    expect(connection.query.get('encoding')).toBe('json');
    expect(resume.d).toMatchObject({ session_id: sessionId, seq: last });
    expect(gateway.framesOf(IDENTIFY)).toHaveLength(1);
    expect(shard.session?.sessionId).toBe(sessionId);
  });
});

void describe('Shard latency, in virtual time', () => {
  void it('measures each round trip on the clock and reports the last, the average and the five most recent', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 1_000 });
    const clock = new VirtualClock();
    const shard = shardOn(gateway, { random: () => 0.5, clock });
    expect(shard.latencyStats).toEqual({ last: null, average: null, recent: [] });
    await shard.connect();
    // The gateway does not answer: each ACK is sent by hand once the clock has moved by the round trip wanted.
    gateway.setAcks(0, false);

    const roundTrips = [10, 20, 30, 40, 50, 60, 70];
    for (const [i, roundTrip] of roundTrips.entries()) {
      await beatAt(gateway, shard, clock, 500 + i * 1_000, false);
      clock.advance(roundTrip);
      gateway.sendPayload(0, { op: GatewayOpcodes.HeartbeatAck });
      await eventually(() => shard.latencyStats.last === roundTrip, 3_000, `the ACK after ${roundTrip} ms`);
    }

    expect(shard.latencyStats).toEqual({ last: 70, average: 50, recent: [30, 40, 50, 60, 70] });
    expect(shard.info().latency).toEqual(shard.latencyStats);
  });

  void it('resets latency when a new HELLO arrives, and records again after the next ACK', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 1_000 });
    const clock = new VirtualClock();
    const shard = shardOn(gateway, { random: () => 0.5, clock });
    await shard.connect();
    await beatAt(gateway, shard, clock, 500);
    await beatAt(gateway, shard, clock, 1_500);
    expect(shard.latencyStats.recent).toEqual([0, 0]);

    let atResume: ReturnType<Shard['info']>['latency'] | null = null;
    const sub = shard.state$.subscribe((s) => {
      if (s === ShardState.Resuming) atResume = shard.info().latency;
    });
    try {
      const resumed = nextDispatch(shard, 'RESUMED');
      gateway.reconnect(0);
      await waitFor(shard.state$, (s) => s === ShardState.Disconnected);
      clock.advance(0);
      await resumed;
    } finally {
      sub.unsubscribe();
    }
    expect(atResume).toEqual({ last: null, average: null, recent: [] });
    expect(shard.latencyStats.recent).toEqual([]);

    // The new connection's HELLO came at 1500 ms: its first beat is due 500 ms later.
    const second = gateway.connections[1];
    await beatAt(gateway, shard, clock, 2_000);
    expect(framesOn(second, HEARTBEAT)).toHaveLength(1);
    expect(shard.latencyStats).toEqual({ last: 0, average: 0, recent: [0] });
  });
});

void describe('Shard handshake timeouts, in virtual time', () => {
  void it('opens a new connection exactly helloTimeout after the last one opened when no HELLO arrives', async () => {
    const gateway = await gatewayWith();
    gateway.behaviour.sendHello = false;
    gateway.once('connection', () => {
      gateway.behaviour.sendHello = true;
    });
    const clock = new VirtualClock();
    const shard = shardOn(gateway, { helloTimeout: 300, clock });
    const firstConnection = gateway.waitForConnection();
    const ready = connectQuietly(shard);
    const first = await firstConnection;

    clock.advance(299);
    expect(shard.counters.reconnectsByReason.get('hello-timeout')).toBeUndefined();
    expect(shard.state).toBe(ShardState.Connecting);
    const second = gateway.waitForConnection((c) => c.id === 2, 3_000);
    clock.advance(1);
    expect(shard.counters.reconnectsByReason.get('hello-timeout')).toBe(1);
    // Attempt 1 waits 0 ms: the next connection opens at the same tick.
    expect(shard.info().reconnectAttempts).toBe(1);
    await second;
    await ready;

    expect(first.frames).toHaveLength(0);
    await eventually(() => first.closeCode !== null, 2_000, 'the silent connection to close');
    expect(first.closedByServer).toBe(false);
    expect(framesOn(gateway.connections[1], IDENTIFY)).toHaveLength(1);
    expect(gateway.connections).toHaveLength(2);
  });

  void it('reconnects and identifies again exactly readyTimeout after the IDENTIFY when no READY arrives', async () => {
    // Heartbeats far apart: the clock moves 400 ms here, and no beat may be due twice meanwhile.
    const gateway = await gatewayWith({ heartbeatInterval: 60_000 });
    gateway.behaviour.answerHandshake = false;
    gateway.on('connection', (c: LocalGatewayConnection) => {
      if (c.id === 2) gateway.behaviour.answerHandshake = true;
    });
    const clock = new VirtualClock();
    const shard = shardOn(gateway, { readyTimeout: 400, identifyQueue: immediateQueue, clock });
    const ready = connectQuietly(shard);

    const firstIdentify = await gateway.waitForFrame((f) => f.op === IDENTIFY, 3_000, 0);
    clock.advance(399);
    expect(shard.counters.reconnectsByReason.get('ready-timeout')).toBeUndefined();
    expect(shard.state).toBe(ShardState.Identifying);
    const second = gateway.waitForConnection((c) => c.id === 2, 3_000);
    clock.advance(1);
    expect(shard.counters.reconnectsByReason.get('ready-timeout')).toBe(1);
    const connection = await second;
    await ready;

    expect(firstIdentify.connectionId).toBe(1);
    expect(connection.path).toBe('/');
    expect(framesOn(connection, IDENTIFY)).toHaveLength(1);
    expect(gateway.framesOf(IDENTIFY)).toHaveLength(2);
    expect(gateway.framesOf(RESUME)).toHaveLength(0);
    expect(shard.state).toBe(ShardState.Ready);
  });
});

void describe('Shard states', () => {
  void it('goes connecting -> identifying -> ready, connecting -> resuming -> ready on a resume, and disconnected on close', async () => {
    const gateway = await gatewayWith();
    const clock = new VirtualClock();
    const shard = shardOn(gateway, { random: () => 0.5, clock });
    const states: ShardState[] = [];
    const sub = shard.state$.subscribe((s) => states.push(s));
    try {
      await shard.connect();
      expect(states).toEqual([ShardState.Disconnected, ShardState.Connecting, ShardState.Identifying, ShardState.Ready]);

      states.length = 0;
      gateway.reconnect(0);
      await waitFor(shard.state$, (s) => s === ShardState.Disconnected);
      // The first reconnect after a healthy connection is due at once: 0 ms on the shard's clock.
      clock.advance(0);
      await waitFor(shard.state$, (s) => s === ShardState.Ready);
      expect(states).toEqual([ShardState.Disconnected, ShardState.Connecting, ShardState.Resuming, ShardState.Ready]);
      expect(gateway.framesOf(RESUME)).toHaveLength(1);

      states.length = 0;
      await shard.close();
      expect(states).toEqual([ShardState.Disconnected]);
      expect(shard.state).toBe(ShardState.Disconnected);
      // No timer is left that could open another connection.
      expect(clock.pending).toBe(0);
      expect(gateway.connections).toHaveLength(2);
    } finally {
      sub.unsubscribe();
    }
  });
});
