import { describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes, PresenceUpdateStatus, type GatewaySendPayload } from 'discord-api-types/v10';
import { ShardCommandError, ShardState, type IIdentifyQueue } from '../../lib/nest';
import type { RecordedFrame } from '../../lib/nest/testing';
import {
  createShard,
  eventually,
  heartbeatRoundTrip,
  nextDispatch,
  startGateway,
  useGatewayAndShard,
  waitForState,
} from '../helpers/gateway-test-kit';

/** A presence update whose `since` field numbers it, so the order of arrival can be checked. */
function presence(n: number, extra = ''): GatewaySendPayload {
  return {
    op: GatewayOpcodes.PresenceUpdate,
    d: {
      since: n,
      activities: extra ? [{ name: extra, type: 0 }] : [],
      status: PresenceUpdateStatus.Online,
      afk: false,
    },
  };
}

function presenceNumbers(frames: RecordedFrame[]): number[] {
  return frames.filter((f) => f.op === GatewayOpcodes.PresenceUpdate).map((f) => f.d.since as number);
}

/** Largest number of frames found in any window of `windowMs` (a frame at t leaves the window at t + windowMs). */
function busiestWindow(times: number[], windowMs: number): number {
  let worst = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i] - times[j] >= windowMs) j++;
    worst = Math.max(worst, i - j + 1);
  }
  return worst;
}

/** An identify queue that holds the grant until `release()` is called. */
function gatedQueue(): { queue: IIdentifyQueue; release: () => void; asked: () => boolean } {
  let release: () => void = () => undefined;
  let asked = false;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    queue: {
      acquire: () => {
        asked = true;
        return gate;
      },
    },
    release: () => release(),
    asked: () => asked,
  };
}

void describe('Shard commands', () => {
  const f = useGatewayAndShard();

  void it('holds commands sent before READY and sends them in order after it, never before IDENTIFY', async () => {
    const gateway = (f.gateway = await startGateway());
    const gate = gatedQueue();
    const shard = (f.shard = createShard(gateway, { identifyQueue: gate.queue, random: () => 0.1 }));

    // Before connect() at all.
    const sends = [shard.send(presence(1)), shard.send(presence(2))];
    const ready = shard.connect();
    // While waiting for the identify grant (heartbeats already flow).
    await eventually(() => gate.asked(), 15_000, 'identify queue asked');
    await gateway.waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat, 15_000, 0);
    sends.push(shard.send(presence(3)), shard.send(presence(4)));
    // Anything the shard sent before answering this heartbeat request has been recorded.
    await heartbeatRoundTrip(gateway, gateway.connections[0]);
    expect(gateway.framesOf(GatewayOpcodes.PresenceUpdate)).toHaveLength(0);

    gate.release();
    await ready;
    await Promise.all(sends);
    await eventually(() => gateway.framesOf(GatewayOpcodes.PresenceUpdate).length === 4, 15_000, 'four presences');

    const frames = gateway.connections[0].frames;
    const identifyAt = frames.findIndex((f) => f.op === GatewayOpcodes.Identify);
    expect(identifyAt).toBeGreaterThanOrEqual(0);
    const firstPresenceAt = frames.findIndex((f) => f.op === GatewayOpcodes.PresenceUpdate);
    expect(firstPresenceAt).toBeGreaterThan(identifyAt);
    expect(presenceNumbers(frames)).toEqual([1, 2, 3, 4]);
    // Nothing made the gateway close the connection (4003 would follow a command before IDENTIFY).
    expect(gateway.connections).toHaveLength(1);
    expect(gateway.connections[0].closeCode).toBeNull();
  });

  void it('rejects a payload over 4096 bytes with a ShardCommandError and never sends it', async () => {
    const gateway = (f.gateway = await startGateway());
    const shard = (f.shard = createShard(gateway));
    await shard.connect();

    // 1,400 three-byte characters: under 4096 UTF-16 units but over 4096 UTF-8 bytes.
    const tooBig = presence(1, '€'.repeat(1_400));
    expect(JSON.stringify(tooBig).length).toBeLessThan(4_096);
    const error = await shard.send(tooBig).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShardCommandError);
    expect((error as Error).message).toContain('4096');

    const plainTooBig = shard.send(presence(2, 'a'.repeat(5_000)));
    await expect(plainTooBig).rejects.toThrow(/4096/);

    // A payload just under the limit still goes out.
    const base = Buffer.byteLength(JSON.stringify(presence(3, 'x')));
    const justFits = presence(3, 'x'.repeat(1 + 4_096 - base));
    expect(Buffer.byteLength(JSON.stringify(justFits))).toBe(4_096);
    await shard.send(justFits);
    await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 15_000, 0);

    expect(presenceNumbers(gateway.frames)).toEqual([3]);
    expect(Math.max(...gateway.frames.map((f) => f.bytes))).toBeLessThanOrEqual(4_096);
    expect(shard.state).toBe(ShardState.Ready);
    expect(gateway.connections).toHaveLength(1);
  });

  const malformed: [string, unknown][] = [
    ['no op', { d: {} }],
    ['a string op', { op: '3', d: {} }],
    ['a fractional op', { op: 3.5, d: {} }],
    ['null', null],
    ['a number', 42],
    ['op 2 (IDENTIFY)', { op: GatewayOpcodes.Identify, d: { token: 'x' } }],
    ['op 1 (heartbeat)', { op: GatewayOpcodes.Heartbeat, d: null }],
    ['op 6 (RESUME)', { op: GatewayOpcodes.Resume, d: { session_id: 'x', seq: 1, token: 'x' } }],
  ];
  for (const [name, command] of malformed) {
    void it(`rejects a malformed or shard-managed command: ${name}`, async () => {
      const gateway = (f.gateway = await startGateway());
      const shard = (f.shard = createShard(gateway));
      await shard.connect();
      const before = gateway.frames.length;
      const error = await shard.send(command as unknown as GatewaySendPayload).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ShardCommandError);
      // A valid command sent afterwards is the next non-heartbeat frame the gateway sees.
      await shard.send(presence(7));
      const next = await gateway.waitForFrame((f) => f.op !== GatewayOpcodes.Heartbeat, 15_000, before);
      expect(next.op).toBe(GatewayOpcodes.PresenceUpdate);
      expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);
      expect(gateway.framesOf(GatewayOpcodes.Resume)).toHaveLength(0);
      expect(gateway.connections).toHaveLength(1);
    });
  }

  void it('spreads a burst over the sliding window: every frame arrives, in order, heartbeats stay on time', { timeout: 40_000 }, async () => {
    // Real time on purpose: the spacing of real heartbeats among throttled frames on a real socket.
    const BURST_HEARTBEAT_MS = 1_000;
    const limit = 20;
    const windowMs = 2_000;
    // The gateway enforces the same limit with a slightly shorter window, as a margin for loopback delays.
    const gateway = (f.gateway = await startGateway({ heartbeatInterval: BURST_HEARTBEAT_MS, commandLimit: limit, commandWindowMs: windowMs - 20 }));
    const shard = (f.shard = createShard(gateway, { commandRateLimit: { limit, windowMs }, random: () => 0.5 }));
    await shard.connect();
    const count = 60;
    const results = Array.from({ length: count }, (_, i) => shard.send(presence(i + 1)));
    await Promise.all(results);
    const last = await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate && f.d.since === count, 10_000, 0);
    // Two heartbeats after the last command, so that their spacing during the burst is fully visible.
    const afterBurst = gateway.frames.indexOf(last) + 1;
    const firstAfter = await gateway.waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat, 15_000, afterBurst);
    await gateway.waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat, 15_000, gateway.frames.indexOf(firstAfter) + 1);

    expect(gateway.connections).toHaveLength(1);
    expect(gateway.connections[0].closeCode).toBeNull();
    const frames = gateway.connections[0].frames;
    expect(presenceNumbers(frames)).toEqual(Array.from({ length: count }, (_, i) => i + 1));

    // Every frame of the connection counts, heartbeats and IDENTIFY included. The margin covers the delay
    // between the shard sending a frame and the gateway stamping it.
    expect(busiestWindow(frames.map((f) => f.at), windowMs - 20)).toBeLessThanOrEqual(limit);
    // The burst really was throttled: it did not go out in one window.
    const presences = frames.filter((f) => f.op === GatewayOpcodes.PresenceUpdate);
    expect(presences[presences.length - 1].at - presences[0].at).toBeGreaterThan(windowMs);

    const beats = frames.filter((f) => f.op === GatewayOpcodes.Heartbeat).map((f) => f.at);
    expect(beats.length).toBeGreaterThan((presences[presences.length - 1].at - presences[0].at) / BURST_HEARTBEAT_MS - 1);
    for (let i = 1; i < beats.length; i++) {
      const gap = beats[i] - beats[i - 1];
      expect(gap).toBeGreaterThan(BURST_HEARTBEAT_MS * 0.5);
      expect(gap).toBeLessThan(BURST_HEARTBEAT_MS * 1.5);
    }
  });

  void it('keeps commands sent while the connection is down and sends them, in order, after the resume', async () => {
    const gateway = (f.gateway = await startGateway());
    const shard = (f.shard = createShard(gateway, { backoff: { baseMs: 200, maxMs: 400 }, random: () => 0.5 }));
    await shard.connect();
    await shard.send(presence(1));
    await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 15_000, 0);

    const resumed = nextDispatch(shard, 'RESUMED');
    gateway.dropShard(0);
    await waitForState(shard, ShardState.Disconnected, 15_000);
    const sends = [shard.send(presence(2)), shard.send(presence(3)), shard.send(presence(4))];
    await resumed;
    await Promise.all(sends);
    await eventually(() => gateway.framesOf(GatewayOpcodes.PresenceUpdate).length === 4, 15_000, 'queued commands');

    expect(gateway.connections).toHaveLength(2);
    const second = gateway.connections[1].frames;
    const resumeAt = second.findIndex((f) => f.op === GatewayOpcodes.Resume);
    expect(resumeAt).toBeGreaterThanOrEqual(0);
    expect(second.findIndex((f) => f.op === GatewayOpcodes.PresenceUpdate)).toBeGreaterThan(resumeAt);
    expect(presenceNumbers(second)).toEqual([2, 3, 4]);
    expect(presenceNumbers(gateway.frames)).toEqual([1, 2, 3, 4]);
  });

  void it('rejects commands still waiting for READY when the shard is closed, and never sends them', async () => {
    const gateway = (f.gateway = await startGateway());
    gateway.behaviour.answerHandshake = false;
    const shard = (f.shard = createShard(gateway));
    const ready = shard.connect();
    await gateway.waitForFrame((f) => f.op === GatewayOpcodes.Identify, 15_000, 0);
    const pending = [shard.send(presence(1)), shard.send(presence(2))];
    const outcomes = Promise.allSettled([ready, ...pending]);
    await shard.close();
    const settled = await outcomes;
    for (const result of settled) expect(result.status).toBe('rejected');
    for (const result of settled.slice(1)) {
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(ShardCommandError);
    }
    expect(gateway.framesOf(GatewayOpcodes.PresenceUpdate)).toHaveLength(0);
  });

  void it('rejects commands still held by the rate limit when the shard is closed; the sent ones arrived', async () => {
    const gateway = (f.gateway = await startGateway({ commandLimit: 20, commandWindowMs: 2_000 }));
    const shard = (f.shard = createShard(gateway, { commandRateLimit: { limit: 20, windowMs: 2_000 } }));
    await shard.connect();
    const results = Array.from({ length: 30 }, (_, i) => shard.send(presence(i + 1)));
    const settled = Promise.allSettled(results);
    // The first command is on the wire; the last ones wait for the window (IDENTIFY's frame leaves it after 2 s).
    await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 15_000, 0);
    await shard.close();
    const outcomes = await settled;
    const delivered = outcomes.filter((o) => o.status === 'fulfilled').length;
    expect(delivered).toBeGreaterThan(0);
    expect(delivered).toBeLessThan(30);
    // Delivered ones form a prefix: the order was kept up to the close.
    expect(outcomes.slice(0, delivered).every((o) => o.status === 'fulfilled')).toBe(true);
    for (const o of outcomes.slice(delivered)) {
      expect(o.status).toBe('rejected');
      expect((o as PromiseRejectedResult).reason).toBeInstanceOf(ShardCommandError);
    }
    await eventually(() => presenceNumbers(gateway.frames).length === delivered, 15_000, 'delivered frames');
    expect(presenceNumbers(gateway.frames)).toEqual(Array.from({ length: delivered }, (_, i) => i + 1));
  });
});
