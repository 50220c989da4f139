import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import {
  GatewayOptionsError,
  Shard,
  ShardCommandError,
  ShardState,
  type HandshakeKind,
  type IIdentifyQueue,
  type ShardOptions,
  type ShardSession,
} from '../../lib/core';
import type { LocalGateway } from '../../lib/nest/testing';
import { createShard, eventually, heartbeatRoundTrip, startGateway, waitForState } from '../helpers/gateway-test-kit';

const OP_IDENTIFY = GatewayOpcodes.Identify;
const OP_RESUME = GatewayOpcodes.Resume;

let gateway: LocalGateway | null = null;
let shards: Shard[] = [];

/** A guard that answers from `answers` (the last one repeats) and records each call with its time. */
function recordingGuard(...answers: (boolean | Error)[]) {
  const calls: { kind: HandshakeKind; at: number }[] = [];
  const guard = async (kind: HandshakeKind): Promise<boolean> => {
    calls.push({ kind, at: Date.now() });
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)];
    await new Promise((resolve) => setImmediate(resolve));
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { guard, calls };
}

async function shardWith(options: Partial<ShardOptions>): Promise<{ gw: LocalGateway; shard: Shard; debug: string[] }> {
  gateway ??= await startGateway();
  const shard = createShard(gateway, { random: () => 0.5, identifyQueue: { acquire: () => Promise.resolve() }, ...options });
  shards.push(shard);
  const debug: string[] = [];
  shard.debug$.subscribe((line) => debug.push(line));
  return { gw: gateway, shard, debug };
}

/** A session the gateway knows: a shard identifies, then closes resumably. */
async function savedSession(gw: LocalGateway): Promise<ShardSession> {
  const first = createShard(gw, { random: () => 0.5, identifyQueue: { acquire: () => Promise.resolve() } });
  shards.push(first);
  await first.connect();
  gw.dispatch(0, 'MESSAGE_CREATE', { content: 'before the close' });
  await eventually(() => first.info().sequence === 2, 15_000, 'the message');
  return (await first.close({ resumable: true }))!;
}

function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('Expected a rejection');
    },
    (error: unknown) => error,
  );
}

void describe('Shard handshake guard (fencing)', () => {
  afterEach(async () => {
    await Promise.all(shards.map((shard) => shard.close()));
    shards = [];
    await gateway?.close();
    gateway = null;
  });

  void it('is asked before IDENTIFY, before the identify queue: the IDENTIFY goes out as soon as it is granted', async () => {
    const asked: number[] = [];
    const granted: number[] = [];
    const reported: number[] = [];
    let grant!: () => void;
    const queue: IIdentifyQueue = {
      acquire: async () => {
        asked.push(Date.now());
        await new Promise<void>((resolve) => (grant = resolve));
        granted.push(Date.now());
      },
      identified: (shardId) => reported.push(shardId),
    };
    const { guard, calls } = recordingGuard(true);
    const { gw, shard } = await shardWith({ handshakeGuard: guard, identifyQueue: queue });
    const ready = shard.connect();
    await eventually(() => asked.length === 1, 15_000, 'the identify queue asked');
    // The shard answered a heartbeat request while it waits for the grant: no IDENTIFY went out before it.
    await heartbeatRoundTrip(gw, gw.connections[0]);
    expect(gw.framesOf(OP_IDENTIFY)).toEqual([]);
    grant();
    await ready;

    expect(calls.map((c) => c.kind)).toEqual(['identify']);
    expect(asked[0]).toBeGreaterThanOrEqual(calls[0].at);
    const identify = gw.framesOf(OP_IDENTIFY, 0);
    expect(identify).toHaveLength(1);
    expect(identify[0].at).toBeGreaterThanOrEqual(granted[0]);
    // The queue hears that the IDENTIFY was written, once.
    expect(reported).toEqual([0]);
  });

  void it('is asked with "resume" before each RESUME, on reconnects too', async () => {
    gateway = await startGateway();
    const session = await savedSession(gateway);
    const { guard, calls } = recordingGuard(true);
    const { gw, shard } = await shardWith({ handshakeGuard: guard, session });
    await shard.connect();
    expect(calls.map((c) => c.kind)).toEqual(['resume']);

    const resumes = gw.framesOf(OP_RESUME).length;
    gw.reconnect(0);
    await eventually(() => gw.framesOf(OP_RESUME).length === resumes + 1 && shard.state === ShardState.Ready, 15_000, 'the second RESUME');
    expect(calls.map((c) => c.kind)).toEqual(['resume', 'resume']);
    expect(gw.framesOf(OP_IDENTIFY)).toHaveLength(1);
  });

  void it('refusing IDENTIFY: nothing is sent, the shard closes with 4200, stops, and says so on debug$', async () => {
    const { guard, calls } = recordingGuard(false);
    const { gw, shard, debug } = await shardWith({ handshakeGuard: guard });
    const error = await rejectionOf(shard.connect());

    expect(error).toBeInstanceOf(ShardCommandError);
    expect((error as Error).message).toMatch(/handshake guard refused to identify/);
    expect(calls.map((c) => c.kind)).toEqual(['identify']);
    await eventually(() => gw.connections[0]?.closeCode !== null, 15_000, 'the close');
    expect(gw.connections[0].closeCode).toBe(4200);
    expect(gw.framesOf(OP_IDENTIFY)).toEqual([]);
    expect(shard.state).toBe(ShardState.Disconnected);
    expect(debug.some((line) => /handshake guard refused to identify: closing resumably and stopping/.test(line))).toBe(true);
    // Stopped: the refusal closed the shard as close() does, which schedules no reconnect (a reconnect says so on
    // debug$ when it is scheduled, and the close above has gone through on both sides).
    expect(debug.filter((line) => /reconnect attempt|connecting to/.test(line))).toHaveLength(1);
    expect(gw.connections).toHaveLength(1);
  });

  void it('refusing RESUME: the session is kept for whoever may resume it, and no RESUME is sent', async () => {
    gateway = await startGateway();
    const session = await savedSession(gateway);
    const resumesBefore = gateway.framesOf(OP_RESUME).length;
    const connectionsBefore = gateway.connections.length;
    const { guard } = recordingGuard(false);
    const { gw, shard, debug } = await shardWith({ handshakeGuard: guard, session });
    await rejectionOf(shard.connect());

    expect(gw.framesOf(OP_RESUME)).toHaveLength(resumesBefore);
    expect(shard.session).toEqual({ ...session, shardCount: 1 });
    await eventually(() => gw.connections[connectionsBefore]?.closeCode === 4200, 15_000, 'the resumable close');
    expect(debug.some((line) => /refused to resume/.test(line))).toBe(true);

    // The session is still resumable by a shard the guard lets through.
    const next = createShard(gw, { random: () => 0.5, session: shard.session });
    shards.push(next);
    await next.connect();
    expect(gw.framesOf(OP_RESUME)).toHaveLength(resumesBefore + 1);
    expect(next.session?.sessionId).toBe(session.sessionId);
  });

  void it('a guard that rejects counts as a refusal', async () => {
    const { guard } = recordingGuard(new Error('Redis is down'));
    const { gw, shard, debug } = await shardWith({ handshakeGuard: guard });
    await rejectionOf(shard.connect());
    expect(gw.framesOf(OP_IDENTIFY)).toEqual([]);
    expect(debug.some((line) => /handshake guard failed before identify: Redis is down/.test(line))).toBe(true);
    await waitForState(shard, ShardState.Disconnected, 15_000);
    expect(gw.connections[0].closeCode === null || gw.connections[0].closeCode === 4200).toBe(true);
  });

  void it('an approval that arrives after the shard was closed sends nothing', async () => {
    let release!: () => void;
    const { gw, shard } = await shardWith({
      handshakeGuard: () => new Promise<boolean>((resolve) => (release = () => resolve(true))),
    });
    const connecting = shard.connect().catch(() => undefined);
    await eventually(() => release !== undefined, 15_000, 'the guard call');
    await shard.close({ resumable: true });
    release();
    await connecting;
    // Everything the approval set off synchronously or in microtasks has run; the gateway saw the only connection
    // close, and an IDENTIFY sent on it would have come before the close.
    await new Promise((resolve) => setImmediate(resolve));
    await eventually(() => gw.connections[0].closeCode !== null, 15_000, 'the close');
    expect(gw.framesOf(OP_IDENTIFY)).toEqual([]);
    expect(gw.connections).toHaveLength(1);
    expect(shard.state).toBe(ShardState.Disconnected);
  });

  void it('must be a function', () => {
    let thrown: unknown;
    try {
      new Shard({ id: 0, total: 1, token: 't', intents: 0, handshakeGuard: true as never });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(GatewayOptionsError);
    expect((thrown as GatewayOptionsError).option).toBe('handshakeGuard');
  });

  void it('waiting for the guard does not stop heartbeats', async () => {
    const { guard } = recordingGuard(true);
    // The guard answers only once a heartbeat has arrived (the first one is due after 1 % of the interval).
    const slow = async (kind: HandshakeKind) => {
      await gateway!.waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat, 15_000, 0);
      return guard(kind);
    };
    const { gw, shard } = await shardWith({ handshakeGuard: slow, random: () => 0.01 });
    await shard.connect();
    // In arrival order (two frames may carry the same millisecond).
    const identifyIndex = gw.frames.findIndex((f) => f.op === OP_IDENTIFY);
    const beatsBefore = gw.frames.slice(0, identifyIndex).filter((f) => f.op === GatewayOpcodes.Heartbeat);
    expect(beatsBefore.length).toBeGreaterThanOrEqual(1);
    await waitForState(shard, ShardState.Ready);
  });
});
