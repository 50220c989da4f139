import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { ShardState, type IIdentifyQueue, type Shard, type ShardOptions } from '../../lib';
import type { LocalGateway, LocalGatewayConnection, LocalGatewayOptions, RecordedFrame } from '../../lib/testing';
import { createShard, eventually, nextDispatch, sleep, startGateway, waitFor } from '../helpers/gateway-test-kit';

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

/** Records when each connection reached the gateway, by connection id. */
function trackConnectionTimes(gateway: LocalGateway): Map<number, number> {
  const times = new Map<number, number>();
  gateway.on('connection', (c: LocalGatewayConnection) => times.set(c.id, Date.now()));
  return times;
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

void describe('Shard heartbeating', () => {
  void it('sends the first heartbeat after heartbeat_interval * random() and then one every interval', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 1_000 });
    const opened = trackConnectionTimes(gateway);
    const shard = shardOn(gateway, { random: () => 0.5 });
    await shard.connect();

    const connection = gateway.connections[0];
    const first = await gateway.waitForFrame((f) => f.op === HEARTBEAT && f.connectionId === connection.id, 3_000, 0);
    const sinceOpen = first.at - opened.get(connection.id)!;
    expect(sinceOpen).toBeGreaterThanOrEqual(450);
    expect(sinceOpen).toBeLessThan(900);

    const second = await gateway.waitForFrame(
      (f) => f.op === HEARTBEAT && f.connectionId === connection.id && f.at > first.at,
      3_000,
      0,
    );
    const gap = second.at - first.at;
    expect(gap).toBeGreaterThanOrEqual(850);
    expect(gap).toBeLessThan(1_600);
    expect(framesOn(connection, HEARTBEAT)).toHaveLength(2);
  });

  void it('heartbeats with d = null before any dispatch and keeps beating while the identify queue holds the shard', async () => {
    const gateway = await gatewayWith();
    const queue = gatedQueue();
    const shard = shardOn(gateway, { random: () => 0.5, identifyQueue: queue });
    const ready = connectQuietly(shard);

    await waitFor(shard.state$, (s) => s === ShardState.Identifying);
    const connection = await eventually(() => gateway.connections.length > 0).then(() => gateway.connections[0]);
    await eventually(() => framesOn(connection, HEARTBEAT).length >= 3, 5_000, 'three heartbeats in the queue');

    expect(queue.calls).toEqual([0]);
    expect(framesOn(connection, IDENTIFY)).toHaveLength(0);
    expect(shard.state).toBe(ShardState.Identifying);
    const beatsWhileQueued = framesOn(connection, HEARTBEAT);
    for (const beat of beatsWhileQueued) expect(beat.d).toBeNull();

    queue.release();
    await ready;
    const identify = framesOn(connection, IDENTIFY);
    expect(identify).toHaveLength(1);
    expect(identify[0].at).toBeGreaterThanOrEqual(beatsWhileQueued[beatsWhileQueued.length - 1].at);
    expect(connection.frames.indexOf(identify[0])).toBeGreaterThan(connection.frames.indexOf(beatsWhileQueued[2]));
  });

  void it('heartbeats with the last sequence number once dispatches arrived', async () => {
    const gateway = await gatewayWith();
    const shard = shardOn(gateway, { random: () => 0.5 });
    await shard.connect();

    gateway.dispatch(0, 'MESSAGE_CREATE', { id: '1' });
    gateway.dispatch(0, 'MESSAGE_CREATE', { id: '2' });
    const last = gateway.dispatch(0, 'TYPING_START', { channel_id: '3' });
    await nextDispatch(shard, 'TYPING_START');
    expect(last).toBeGreaterThan(1);

    const beat = await gateway.waitForFrame((f) => f.op === HEARTBEAT, 3_000);
    expect(beat.d).toBe(last);
  });

  void it('answers a server heartbeat request (op 1) at once instead of waiting for the schedule', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 5_000 });
    const shard = shardOn(gateway, { random: () => 0.9 });
    await shard.connect();

    const connection = gateway.connections[0];
    expect(framesOn(connection, HEARTBEAT)).toHaveLength(0);
    const askedAt = Date.now();
    gateway.requestHeartbeat(0);
    const beat = await gateway.waitForFrame((f) => f.op === HEARTBEAT, 2_000);
    expect(beat.connectionId).toBe(connection.id);
    expect(beat.at - askedAt).toBeLessThan(1_000);
    expect(beat.d).toBe(shard.info().sequence);
  });

  void it('ignores a heartbeat ACK that answers no heartbeat', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 5_000 });
    const shard = shardOn(gateway, { random: () => 0.9 });
    await shard.connect();

    gateway.sendPayload(0, { op: GatewayOpcodes.HeartbeatAck });
    gateway.dispatch(0, 'TYPING_START', { channel_id: '1' });
    await nextDispatch(shard, 'TYPING_START');
    expect(shard.latencyStats).toEqual({ last: null, average: null, recent: [] });
    expect(shard.state).toBe(ShardState.Ready);
  });
});

void describe('Shard zombie connections', () => {
  void it('drops a connection whose heartbeat went unacknowledged and resumes on the resume URL with the last sequence', async () => {
    const gateway = await gatewayWith();
    const opened = trackConnectionTimes(gateway);
    const shard = shardOn(gateway, { random: () => 0.5 });
    await shard.connect();
    const sessionId = shard.session!.sessionId;

    gateway.dispatch(0, 'MESSAGE_CREATE', { id: '1' });
    const last = gateway.dispatch(0, 'MESSAGE_CREATE', { id: '2' });
    await waitFor(shard.dispatch$, (e) => e.s === last);

    const old = gateway.connections[0];
    const stoppedAt = Date.now();
    gateway.setAcks(0, false);
    const next = await gateway.waitForConnection(() => true, 3_000);
    const resume = await gateway.waitForFrame((f) => f.op === RESUME && f.connectionId === next.id, 3_000, 0);
    await waitFor(shard.state$, (s) => s === ShardState.Ready);

    const unanswered = framesOn(old, HEARTBEAT).filter((f) => f.at >= stoppedAt);
    expect(unanswered.length).toBeGreaterThanOrEqual(1);
    expect(opened.get(next.id)! - unanswered[0].at).toBeGreaterThanOrEqual(200);

    await eventually(() => old.closeCode !== null, 2_000, 'the zombie connection to close');
    expect(old.closedByServer).toBe(false);
    expect([1000, 1001]).not.toContain(old.closeCode);

    expect(next.path).toBe('/resume');
    expect(next.query.get('v')).toBe('10');
    expect(next.query.get('encoding')).toBe('json');
    expect(resume.d).toMatchObject({ session_id: sessionId, seq: last });
    expect(gateway.framesOf(IDENTIFY)).toHaveLength(1);
    expect(shard.session?.sessionId).toBe(sessionId);
  });
});

void describe('Shard latency', () => {
  void it('reports the last, the average and at most the five most recent heartbeat round trips', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 120 });
    const shard = shardOn(gateway, { random: () => 0.5 });
    expect(shard.latencyStats).toEqual({ last: null, average: null, recent: [] });
    await shard.connect();

    const connection = gateway.connections[0];
    // Seven heartbeats sent means at least six were acknowledged before the seventh went out.
    await eventually(() => framesOn(connection, HEARTBEAT).length >= 7, 5_000, 'seven heartbeats');

    const stats = shard.latencyStats;
    expect(stats.recent).toHaveLength(5);
    for (const value of stats.recent) {
      expect(Number.isFinite(value)).toBe(true);
      expect(value).toBeGreaterThanOrEqual(0);
    }
    expect(stats.last).toBe(stats.recent[4]);
    expect(stats.average).toBeCloseTo(stats.recent.reduce((a, b) => a + b, 0) / 5, 6);
    expect(shard.info().latency).toEqual(shard.latencyStats);
  });

  void it('resets latency when a new HELLO arrives, and records again after the next ACK', async () => {
    const gateway = await gatewayWith({ heartbeatInterval: 150 });
    const shard = shardOn(gateway, { random: () => 0.5 });
    await shard.connect();
    await eventually(() => shard.latencyStats.recent.length >= 2, 5_000, 'two round trips');

    let atResume: ReturnType<Shard['info']>['latency'] | null = null;
    const sub = shard.state$.subscribe((s) => {
      if (s === ShardState.Resuming) atResume = shard.info().latency;
    });
    try {
      gateway.reconnect(0);
      await gateway.waitForReady(0, 3_000);
      await waitFor(shard.state$, (s) => s === ShardState.Ready);
    } finally {
      sub.unsubscribe();
    }
    expect(atResume).toEqual({ last: null, average: null, recent: [] });

    const second = gateway.connections[1];
    await eventually(() => shard.latencyStats.recent.length >= 1, 3_000, 'a round trip on the new connection');
    expect(framesOn(second, HEARTBEAT).length).toBeGreaterThanOrEqual(1);
    expect(shard.latencyStats.recent.length).toBeLessThanOrEqual(framesOn(second, HEARTBEAT).length);
    expect(shard.latencyStats.last).not.toBeNull();
  });
});

void describe('Shard handshake timeouts', () => {
  void it('opens a new connection when no HELLO arrives within helloTimeout', async () => {
    const gateway = await gatewayWith();
    const opened = trackConnectionTimes(gateway);
    gateway.behaviour.sendHello = false;
    gateway.once('connection', () => {
      gateway.behaviour.sendHello = true;
    });
    const shard = shardOn(gateway, { helloTimeout: 300 });
    const ready = connectQuietly(shard);

    const second = await gateway.waitForConnection((c) => c.id === 2, 3_000);
    await ready;

    const first = gateway.connections[0];
    expect(opened.get(second.id)! - opened.get(first.id)!).toBeGreaterThanOrEqual(250);
    expect(first.frames).toHaveLength(0);
    await eventually(() => first.closeCode !== null, 2_000, 'the silent connection to close');
    expect(first.closedByServer).toBe(false);
    expect(framesOn(second, IDENTIFY)).toHaveLength(1);
    expect(gateway.connections).toHaveLength(2);
  });

  void it('reconnects and identifies again when no READY arrives within readyTimeout', async () => {
    const gateway = await gatewayWith();
    gateway.behaviour.answerHandshake = false;
    gateway.on('connection', (c: LocalGatewayConnection) => {
      if (c.id === 2) gateway.behaviour.answerHandshake = true;
    });
    const opened = trackConnectionTimes(gateway);
    const shard = shardOn(gateway, { readyTimeout: 400, identifyQueue: immediateQueue });
    const ready = connectQuietly(shard);

    const firstIdentify = await gateway.waitForFrame((f) => f.op === IDENTIFY, 3_000, 0);
    const second = await gateway.waitForConnection((c) => c.id === 2, 3_000);
    await ready;

    expect(firstIdentify.connectionId).toBe(1);
    expect(opened.get(second.id)! - firstIdentify.at).toBeGreaterThanOrEqual(350);
    expect(second.path).toBe('/');
    expect(framesOn(second, IDENTIFY)).toHaveLength(1);
    expect(gateway.framesOf(IDENTIFY)).toHaveLength(2);
    expect(gateway.framesOf(RESUME)).toHaveLength(0);
    expect(shard.state).toBe(ShardState.Ready);
  });
});

void describe('Shard states', () => {
  void it('goes connecting -> identifying -> ready, connecting -> resuming -> ready on a resume, and disconnected on close', async () => {
    const gateway = await gatewayWith();
    const shard = shardOn(gateway, { random: () => 0.5 });
    const states: ShardState[] = [];
    const sub = shard.state$.subscribe((s) => states.push(s));
    try {
      await shard.connect();
      expect(states).toEqual([ShardState.Disconnected, ShardState.Connecting, ShardState.Identifying, ShardState.Ready]);

      states.length = 0;
      gateway.reconnect(0);
      await gateway.waitForReady(0, 3_000);
      await waitFor(shard.state$, (s) => s === ShardState.Ready);
      expect(states).toEqual([ShardState.Disconnected, ShardState.Connecting, ShardState.Resuming, ShardState.Ready]);
      expect(gateway.framesOf(RESUME)).toHaveLength(1);

      states.length = 0;
      await shard.close();
      expect(states).toEqual([ShardState.Disconnected]);
      expect(shard.state).toBe(ShardState.Disconnected);
      await sleep(50);
      expect(gateway.connections).toHaveLength(2);
    } finally {
      sub.unsubscribe();
    }
  });
});
