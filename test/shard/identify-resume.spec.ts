import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ActivityType, GatewayOpcodes, PresenceUpdateStatus, type GatewayPresenceUpdateData } from 'discord-api-types/v10';
import { Shard, ShardState, type IIdentifyQueue, type ShardOptions } from '../../lib/nest';
import type { LocalGateway, LocalGatewayConnection, LocalGatewayOptions, RecordedFrame } from '../../lib/nest/testing';
import {
  collectDispatches,
  createShard,
  eventually,
  heartbeatRoundTrip,
  nextDispatch,
  startGateway,
  TEST_HEARTBEAT_MS,
  waitForState,
} from '../helpers/gateway-test-kit';

const OP_HEARTBEAT = GatewayOpcodes.Heartbeat;
const OP_IDENTIFY = GatewayOpcodes.Identify;
const OP_RESUME = GatewayOpcodes.Resume;

/** Grants every IDENTIFY at once, so that re-identifies do not wait for a 5 s window. */
const immediateQueue: IIdentifyQueue = { acquire: () => Promise.resolve() };

interface QueueRequest {
  shardId: number;
  signal: AbortSignal | undefined;
  grant: () => void;
}

/** An identify queue that grants only when the test says so, and rejects when the signal aborts. */
class ManualIdentifyQueue implements IIdentifyQueue {
  readonly requests: QueueRequest[] = [];

  acquire(shardId: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.requests.push({ shardId, signal, grant: resolve });
      signal?.addEventListener(
        'abort',
        () => {
          const error = new Error('The identify wait was cancelled');
          error.name = 'AbortError';
          reject(error);
        },
        { once: true },
      );
    });
  }
}

let gateway: LocalGateway | null = null;
let shards: Shard[] = [];

async function gatewayWith(options: LocalGatewayOptions = {}): Promise<LocalGateway> {
  gateway = await startGateway(options);
  return gateway;
}

function shardOn(gw: LocalGateway, options: Partial<ShardOptions> = {}): Shard {
  const shard = createShard(gw, { random: () => 0.5, identifyQueue: immediateQueue, ...options });
  shards.push(shard);
  return shard;
}

/** Starts the shard; the returned promise may be awaited, and a rejection nobody awaits is not reported. */
function connect(shard: Shard): Promise<void> {
  const ready = shard.connect();
  ready.catch(() => undefined);
  return ready;
}

/** IDENTIFY and RESUME frames of one connection. */
function handshakes(connection: LocalGatewayConnection): RecordedFrame[] {
  return connection.frames.filter((f) => f.op === OP_IDENTIFY || f.op === OP_RESUME);
}

/** Frames of one connection other than heartbeats. */
function commandsOf(connection: LocalGatewayConnection): RecordedFrame[] {
  return connection.frames.filter((f) => f.op !== OP_HEARTBEAT);
}

function connectionById(gw: LocalGateway, id: number): LocalGatewayConnection {
  const connection = gw.connections.find((c) => c.id === id);
  if (!connection) throw new Error(`no connection ${id}`);
  return connection;
}

/**
 * Runs `trigger`, then waits for the shard's next handshake frame (IDENTIFY or RESUME) on a newer connection and
 * for the shard to be ready again. Returns that frame.
 */
async function reconnectVia(gw: LocalGateway, shard: Shard, trigger: () => void): Promise<RecordedFrame> {
  const after = gw.connections.length;
  const next = gw.waitForFrame((f) => (f.op === OP_IDENTIFY || f.op === OP_RESUME) && f.connectionId > after);
  trigger();
  const frame = await next;
  await waitForState(shard, ShardState.Ready);
  return frame;
}

/** A 127.0.0.1 port that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

void afterEach(async () => {
  for (const shard of shards) await shard.close();
  shards = [];
  if (gateway) await gateway.close();
  gateway = null;
});

void describe('IDENTIFY payload', () => {
  void it('sends token, intents, default properties, shard [id, total] and large_threshold 50, and no presence', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw, { id: 1, total: 2, intents: 513 });
    await connect(shard);

    const identifies = gw.framesOf(OP_IDENTIFY);
    expect(identifies).toHaveLength(1);
    expect(identifies[0].d).toEqual({
      token: gw.token,
      intents: 513,
      properties: { os: process.platform, browser: 'nestjs-discord-gateway', device: 'nestjs-discord-gateway' },
      shard: [1, 2],
      large_threshold: 50,
    });
    expect(identifies[0].d).not.toHaveProperty('presence');
    expect(shard.info()).toMatchObject({ id: 1, total: 2, state: ShardState.Ready });
  });

  void it('sends a custom large_threshold, custom properties and the presence when given', async () => {
    const gw = await gatewayWith();
    const presence: GatewayPresenceUpdateData = {
      since: null,
      activities: [{ name: 'the gateway', type: ActivityType.Watching }],
      status: PresenceUpdateStatus.DoNotDisturb,
      afk: false,
    };
    const shard = shardOn(gw, {
      id: 0,
      total: 1,
      intents: 1,
      largeThreshold: 250,
      presence,
      identifyProperties: { os: 'linux', browser: 'test-browser', device: 'test-device' },
    });
    await connect(shard);

    const identifies = gw.framesOf(OP_IDENTIFY);
    expect(identifies).toHaveLength(1);
    expect(identifies[0].d).toEqual({
      token: gw.token,
      intents: 1,
      properties: { os: 'linux', browser: 'test-browser', device: 'test-device' },
      shard: [0, 1],
      large_threshold: 250,
      presence,
    });
  });

  void it('never sends two handshakes on one connection across resumes, re-identifies and a repeated HELLO', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw);
    await connect(shard);

    // A second HELLO on the same connection must not start a second handshake.
    gw.sendPayload(0, { op: GatewayOpcodes.Hello, d: { heartbeat_interval: TEST_HEARTBEAT_MS } });
    await heartbeatRoundTrip(gw, 0);
    expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);

    const ops: number[] = [];
    ops.push((await reconnectVia(gw, shard, () => gw.reconnect(0))).op);
    ops.push((await reconnectVia(gw, shard, () => gw.invalidateSession(0, false))).op);
    ops.push((await reconnectVia(gw, shard, () => gw.closeShard(0, 4000))).op);
    ops.push((await reconnectVia(gw, shard, () => gw.closeShard(0, 4009))).op);
    ops.push((await reconnectVia(gw, shard, () => gw.dropShard(0))).op);
    expect(ops).toEqual([OP_RESUME, OP_IDENTIFY, OP_RESUME, OP_IDENTIFY, OP_RESUME]);

    const identifiesPerConnection = new Map<number, number>();
    for (const frame of gw.framesOf(OP_IDENTIFY)) {
      identifiesPerConnection.set(frame.connectionId, (identifiesPerConnection.get(frame.connectionId) ?? 0) + 1);
    }
    expect(identifiesPerConnection.size).toBe(3);
    expect([...identifiesPerConnection.values()].every((count) => count === 1)).toBe(true);
    for (const connection of gw.connections) {
      expect(handshakes(connection).length).toBeLessThanOrEqual(1);
      expect(connection.closeCode).not.toBe(4005);
    }
  });
});

void describe('identify queue', () => {
  void it('sends IDENTIFY only once the queue grants it', async () => {
    const gw = await gatewayWith();
    const queue = new ManualIdentifyQueue();
    // The first heartbeat is due after 1 % of the interval.
    const shard = shardOn(gw, { id: 1, total: 2, identifyQueue: queue, random: () => 0.01 });
    const ready = connect(shard);

    await eventually(() => queue.requests.length === 1, 15_000, 'a queue request');
    expect(queue.requests[0].shardId).toBe(1);
    // Heartbeats go out (a scheduled one, then the answer to a request), IDENTIFY does not.
    await gw.waitForFrame((f) => f.op === OP_HEARTBEAT, 15_000, 0);
    await heartbeatRoundTrip(gw, gw.connections[0]);
    expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(0);
    expect(shard.state).toBe(ShardState.Identifying);

    const identify = gw.waitForFrame((f) => f.op === OP_IDENTIFY);
    queue.requests[0].grant();
    expect((await identify).d.shard).toEqual([1, 2]);
    await ready;
    expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);
    expect(queue.requests).toHaveLength(1);
  });

  void it('aborts the queue wait when the shard is closed, and never identifies afterwards', async () => {
    const gw = await gatewayWith();
    const queue = new ManualIdentifyQueue();
    const shard = shardOn(gw, { identifyQueue: queue });
    const ready = connect(shard);

    await eventually(() => queue.requests.length === 1, 15_000, 'a queue request');
    const { signal } = queue.requests[0];
    expect(signal).toBeDefined();
    expect(signal!.aborted).toBe(false);

    await shard.close();
    expect(signal!.aborted).toBe(true);
    await expect(ready).rejects.toThrow();

    queue.requests[0].grant();
    // Everything the late grant set off synchronously or in microtasks has run; the gateway saw the only
    // connection close, and an IDENTIFY sent on it would have come before the close.
    await new Promise((resolve) => setImmediate(resolve));
    await eventually(() => gw.connections[0].closeCode !== null, 15_000, 'the close');
    expect(gw.connections).toHaveLength(1);
    expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(0);
    expect(shard.state).toBe(ShardState.Disconnected);
  });

  void it('aborts the wait of a dropped connection and identifies only on the new one', async () => {
    const gw = await gatewayWith();
    const queue = new ManualIdentifyQueue();
    const shard = shardOn(gw, { identifyQueue: queue });
    const ready = connect(shard);

    await eventually(() => queue.requests.length === 1, 15_000, 'a queue request');
    gw.connections[0].drop();
    await eventually(() => queue.requests.length === 2, 15_000, 'a second queue request');
    expect(queue.requests[0].signal!.aborted).toBe(true);
    expect(queue.requests[1].signal!.aborted).toBe(false);

    queue.requests[0].grant();
    queue.requests[1].grant();
    await ready;
    const identifies = gw.framesOf(OP_IDENTIFY);
    expect(identifies).toHaveLength(1);
    expect(identifies[0].connectionId).toBe(gw.connections[1].id);
    expect(gw.connections[0].frames.filter((f) => f.op === OP_IDENTIFY)).toHaveLength(0);
  });
});

void describe('session and resume', () => {
  void it('stores session id, resume URL and sequence from READY, and resumes on op 7 at the resume URL', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw);
    const readyEvent = nextDispatch(shard, 'READY');
    await connect(shard);
    const ready = await readyEvent;

    const sessionId = gw.sessionOf(0);
    expect(sessionId).toBeDefined();
    expect(shard.session).toEqual({ sessionId, resumeUrl: gw.resumeUrl, sequence: ready.s, shardCount: 1 });

    gw.dispatch(0, 'MESSAGE_CREATE', { id: '1' });
    const last = gw.dispatch(0, 'MESSAGE_CREATE', { id: '2' });
    await eventually(() => shard.session?.sequence === last, 15_000, 'the sequence to advance');
    expect(shard.info()).toMatchObject({ sequence: last, sessionId });

    const nextConnection = gw.waitForConnection();
    const resume = await reconnectVia(gw, shard, () => gw.reconnect(0));
    const connection = await nextConnection;

    expect(connection.path).toBe('/resume');
    expect([...connection.query.entries()].sort()).toEqual([...gw.connections[0].query.entries()].sort());
    expect(connection.query.get('v')).toBe('10');
    expect(connection.query.get('encoding')).toBe('json');
    expect(connection.query.get('compress')).toBe('zlib-stream');
    expect(commandsOf(connection)[0]).toBe(resume);
    expect(resume.d).toEqual({ token: gw.token, session_id: sessionId, seq: last });
    expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);
    expect(shard.session?.sessionId).toBe(sessionId);
  });

  void it('replays the events missed while disconnected in order, without gaps or duplicates, then RESUMED', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw);
    const collected = collectDispatches(shard);
    try {
      await connect(shard);
      const before = gw.dispatch(0, 'TYPING_START', { n: 0 });
      await eventually(() => shard.session?.sequence === before, 15_000, 'the first event');

      const resumed = nextDispatch(shard, 'RESUMED');
      const resumeFrame = gw.waitForFrame((f) => f.op === OP_RESUME);
      gw.dropShard(0);
      const missed = [1, 2, 3, 4, 5].map((n) => gw.dispatch(0, 'MESSAGE_CREATE', { n }));
      expect((await resumeFrame).d.seq).toBe(before);
      await resumed;
      await waitForState(shard, ShardState.Ready);

      const after = collected.events.filter((e) => e.s > before || e.t === 'RESUMED');
      expect(after.map((e) => e.t)).toEqual([...missed.map(() => 'MESSAGE_CREATE'), 'RESUMED']);
      expect(after.slice(0, 5).map((e) => (e.d as { n: number }).n)).toEqual([1, 2, 3, 4, 5]);
      const sequences = collected.events.map((e) => e.s);
      expect(sequences).toEqual(sequences.map((_, i) => sequences[0] + i));
      expect(new Set(sequences).size).toBe(sequences.length);
      expect(shard.session?.sequence).toBe(sequences[sequences.length - 1]);
      expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);
    } finally {
      collected.stop();
    }
  });

  void it('identifies on the base URL when the resume URL cannot be reached', async () => {
    const port = await closedPort();
    const gw = await gatewayWith({ resumeUrl: `ws://127.0.0.1:${port}/resume` });
    const shard = shardOn(gw);
    await connect(shard);
    const firstSession = shard.session?.sessionId;
    expect(shard.session?.resumeUrl).toBe(`ws://127.0.0.1:${port}/resume`);

    const frame = await reconnectVia(gw, shard, () => gw.reconnect(0));

    expect(frame.op).toBe(OP_IDENTIFY);
    const connection = connectionById(gw, frame.connectionId);
    expect(connection.path).toBe('/');
    expect(gw.connections).toHaveLength(2);
    expect(gw.framesOf(OP_RESUME)).toHaveLength(0);
    expect(shard.session?.sessionId).toBeDefined();
    expect(shard.session?.sessionId).not.toBe(firstSession);
  });
});

void describe('op 7 Reconnect', () => {
  void it('reconnects on op 7 received before HELLO and resumes the session', async () => {
    const gw = await gatewayWith();
    // A long HELLO timeout: only op 7 can make the shard leave the silent connection in time.
    const shard = shardOn(gw, { helloTimeout: 10_000 });
    await connect(shard);
    const sessionId = gw.sessionOf(0);

    gw.behaviour.sendHello = false;
    const silent = gw.waitForConnection();
    gw.reconnect(0);
    const silentConnection = await silent;
    expect(silentConnection.path).toBe('/resume');

    gw.behaviour.sendHello = true;
    const next = gw.waitForConnection(() => true, 15_000);
    silentConnection.send({ op: GatewayOpcodes.Reconnect, d: null });
    const connection = await next;
    await waitForState(shard, ShardState.Ready);

    expect(connection.path).toBe('/resume');
    expect(silentConnection.frames).toHaveLength(0);
    expect(handshakes(connection).map((f) => f.op)).toEqual([OP_RESUME]);
    expect(handshakes(connection)[0].d.session_id).toBe(sessionId);
    expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);
  });

  void it('reconnects on op 7 received before HELLO on a first connection and identifies', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw, { helloTimeout: 10_000 });
    gw.behaviour.sendHello = false;
    const silent = gw.waitForConnection();
    const ready = connect(shard);
    const silentConnection = await silent;

    gw.behaviour.sendHello = true;
    const next = gw.waitForConnection(() => true, 15_000);
    silentConnection.send({ op: GatewayOpcodes.Reconnect, d: null });
    const connection = await next;
    await ready;

    expect(connection.path).toBe('/');
    expect(silentConnection.frames).toHaveLength(0);
    expect(handshakes(connection).map((f) => f.op)).toEqual([OP_IDENTIFY]);
    expect(gw.framesOf(OP_RESUME)).toHaveLength(0);
  });

  void it('still resumes when op 7 is followed at once by a 1000 close from the server', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw);
    await connect(shard);
    const sessionId = gw.sessionOf(0);
    const seq = shard.session?.sequence;

    const frame = await reconnectVia(gw, shard, () => {
      gw.reconnect(0);
      gw.closeShard(0, 1000);
    });

    expect(frame.op).toBe(OP_RESUME);
    expect(frame.d).toEqual({ token: gw.token, session_id: sessionId, seq });
    expect(connectionById(gw, frame.connectionId).path).toBe('/resume');
    expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);
    expect(shard.session?.sessionId).toBe(sessionId);
  });
});

void describe('op 9 Invalid Session', () => {
  void it('resumes on a new connection when d is true', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw);
    await connect(shard);
    const sessionId = gw.sessionOf(0);
    const firstConnection = gw.connections[0];

    const frame = await reconnectVia(gw, shard, () => gw.invalidateSession(0, true));

    expect(frame.op).toBe(OP_RESUME);
    expect(frame.connectionId).not.toBe(firstConnection.id);
    expect(frame.d.session_id).toBe(sessionId);
    expect(connectionById(gw, frame.connectionId).path).toBe('/resume');
    expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);
  });

  void it('drops the session, waits at least invalidSessionDelay.minMs, then identifies on the base URL when d is false', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw, { invalidSessionDelay: { minMs: 300, maxMs: 400 } });
    await connect(shard);
    const firstSession = shard.session?.sessionId;

    const identify = gw.waitForFrame((f) => f.op === OP_IDENTIFY);
    const sentAt = Date.now();
    gw.invalidateSession(0, false);
    await eventually(() => shard.session === null, 15_000, 'the session to be dropped');
    const frame = await identify;
    await waitForState(shard, ShardState.Ready);

    expect(frame.at - sentAt).toBeGreaterThanOrEqual(290);
    expect(connectionById(gw, frame.connectionId).path).toBe('/');
    expect(gw.framesOf(OP_RESUME)).toHaveLength(0);
    expect(shard.session?.sessionId).not.toBe(firstSession);
  });

  void it('treats op 9 without d as not resumable', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw);
    await connect(shard);
    const firstSession = shard.session?.sessionId;

    // The server keeps the session, so a RESUME would succeed: only the shard's reading of `d` decides.
    const frame = await reconnectVia(gw, shard, () => gw.sendPayload(0, { op: GatewayOpcodes.InvalidSession }));

    expect(frame.op).toBe(OP_IDENTIFY);
    expect(connectionById(gw, frame.connectionId).path).toBe('/');
    expect(gw.framesOf(OP_RESUME)).toHaveLength(0);
    expect(shard.session?.sessionId).not.toBe(firstSession);
  });
});

void describe('sequences starting at 0', () => {
  void it('delivers events and resumes with the right seq', async () => {
    const gw = await gatewayWith({ firstSequence: 0 });
    const shard = shardOn(gw);
    const collected = collectDispatches(shard);
    try {
      await connect(shard);
      expect(collected.events.map((e) => [e.t, e.s])).toEqual([['READY', 0]]);
      expect(shard.session?.sequence).toBe(0);

      // Heartbeats carry the last sequence, 0, not null.
      const beat = await heartbeatRoundTrip(gw, 0);
      expect(beat.d).toBe(0);

      const first = await reconnectVia(gw, shard, () => {
        gw.dropShard(0);
        gw.dispatch(0, 'MESSAGE_CREATE', { n: 1 });
        gw.dispatch(0, 'MESSAGE_CREATE', { n: 2 });
      });
      expect(first.op).toBe(OP_RESUME);
      expect(first.d.seq).toBe(0);

      const live = gw.dispatch(0, 'MESSAGE_CREATE', { n: 3 });
      await eventually(() => shard.session?.sequence === live, 15_000, 'the live event');
      const second = await reconnectVia(gw, shard, () => gw.reconnect(0));
      expect(second.op).toBe(OP_RESUME);
      expect(second.d.seq).toBe(live);

      expect(collected.events.map((e) => [e.t, e.s])).toEqual([
        ['READY', 0],
        ['MESSAGE_CREATE', 1],
        ['MESSAGE_CREATE', 2],
        ['RESUMED', 3],
        ['MESSAGE_CREATE', 4],
        ['RESUMED', 5],
      ]);
      expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);
    } finally {
      collected.stop();
    }
  });
});

void describe('close()', () => {
  void it('closes with 1000 by default and forgets the session', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw);
    await connect(shard);
    expect(shard.session).not.toBeNull();

    await expect(shard.close()).resolves.toBeNull();

    await eventually(() => gw.connections[0].closeCode !== null, 15_000, 'the server to see the close');
    expect(gw.connections[0].closeCode).toBe(1000);
    expect(shard.session).toBeNull();
    expect(shard.info()).toMatchObject({ state: ShardState.Disconnected, sessionId: null, sequence: null });
  });

  void it('closes resumably with 4200 and a new shard built from that session resumes it', async () => {
    const gw = await gatewayWith();
    const first = shardOn(gw);
    await connect(first);
    gw.dispatch(0, 'MESSAGE_CREATE', { n: 1 });
    const seq = gw.dispatch(0, 'MESSAGE_CREATE', { n: 2 });
    await eventually(() => first.session?.sequence === seq, 15_000, 'the events');
    const sessionId = gw.sessionOf(0)!;

    const saved = await first.close({ resumable: true });
    expect(saved).toMatchObject({ sessionId, sequence: seq, resumeUrl: gw.resumeUrl });
    await eventually(() => gw.connections[0].closeCode !== null, 15_000, 'the server to see the close');
    expect(gw.connections[0].closeCode).toBe(4200);
    expect(first.session).toMatchObject({ sessionId, sequence: seq });

    const missed = gw.dispatch(0, 'MESSAGE_CREATE', { n: 3 });
    const second = shardOn(gw, { session: saved });
    const collected = collectDispatches(second);
    try {
      await connect(second);
      const connection = gw.connections[1];
      expect(connection.path).toBe('/resume');
      expect(commandsOf(connection)[0]).toMatchObject({
        op: OP_RESUME,
        d: { token: gw.token, session_id: sessionId, seq },
      });
      expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);
      expect(collected.events.map((e) => [e.t, e.s])).toEqual([
        ['MESSAGE_CREATE', missed],
        ['RESUMED', missed + 1],
      ]);
      expect(second.session?.sessionId).toBe(sessionId);
    } finally {
      collected.stop();
    }
  });

  void it('falls back to IDENTIFY when the saved session is answered with op 9', async () => {
    const gw = await gatewayWith();
    const shard = shardOn(gw, {
      session: { sessionId: 'fabricated-session-id', sequence: 7, resumeUrl: gw.resumeUrl },
    });
    await connect(shard);

    const [resumeConnection, identifyConnection] = gw.connections;
    expect(resumeConnection.path).toBe('/resume');
    expect(commandsOf(resumeConnection)[0]).toMatchObject({
      op: OP_RESUME,
      d: { token: gw.token, session_id: 'fabricated-session-id', seq: 7 },
    });
    expect(identifyConnection.path).toBe('/');
    expect(handshakes(identifyConnection).map((f) => f.op)).toEqual([OP_IDENTIFY]);
    expect(gw.connections).toHaveLength(2);
    expect(shard.session?.sessionId).toBe(gw.sessionOf(0));
    expect(shard.session?.sessionId).not.toBe('fabricated-session-id');
  });
});
