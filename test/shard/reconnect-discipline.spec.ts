import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { DefaultShardOptions, MAX_SEQUENCE_JUMP, Shard, ShardState, type ShardOptions } from '../../lib/nest';
import { VirtualClock, type LocalGateway } from '../../lib/nest/testing';
import { collectDispatches, createShard, nextDispatch, startGateway, waitFor } from '../helpers/gateway-test-kit';

/** Discord's usual HELLO interval, ms. */
const DISCORD_HEARTBEAT_MS = 41_250;

let gateway: LocalGateway | null = null;
let shard: Shard | null = null;
/** The virtual clock of the test's shard: timers fire only when the test advances it. */
let clock = new VirtualClock();

void afterEach(async () => {
  await shard?.close();
  await gateway?.close();
  shard = gateway = null;
});

/**
 * A shard on `target` with the library's default reconnect policy (no test timings), a fixed jitter of 0.75 and a
 * fresh virtual clock.
 */
function defaultPolicyShard(target: LocalGateway, options: Partial<ShardOptions> = {}): Shard {
  clock = new VirtualClock();
  return new Shard({ id: 0, total: 1, token: target.token, intents: 513, gatewayUrl: target.url, random: () => 0.5, clock, ...options });
}

/** The delays of the shard's "reconnect attempt N in D ms" lines, handed out one at a time as they come. */
function reconnectDelays(target: Shard): { next: () => Promise<number> } {
  const delays: number[] = [];
  let wake: (() => void) | null = null;
  target.debug$.subscribe((line) => {
    const match = /reconnect attempt \d+ in (\d+) ms/.exec(line);
    if (!match) return;
    delays.push(Number(match[1]));
    wake?.();
    wake = null;
  });
  return {
    async next(): Promise<number> {
      while (delays.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return delays.shift()!;
    },
  };
}

/**
 * Runs `target` in virtual time (its clock, from 0) and advances the clock by each reconnect delay as
 * the shard schedules it, until the next connection would open at or after `untilMs` or `maxConnections` opened.
 * Returns the virtual time at which each connection reached the gateway.
 */
async function connectionTimes(target: Shard, on: LocalGateway, untilMs: number, maxConnections = 200): Promise<number[]> {
  const opened: number[] = [];
  on.on('connection', () => opened.push(clock.now()));
  const delays = reconnectDelays(target);
  target.connect().catch(() => undefined);
  while (opened.length < maxConnections) {
    const delay = await delays.next();
    if (clock.now() + delay >= untilMs) break;
    clock.advance(delay);
  }
  return opened;
}

/** Largest number of entries of `times` (sorted) inside any window of `windowMs`. */
function maxInWindow(times: number[], windowMs: number): number {
  let max = 0;
  for (let i = 0; i < times.length; i++) {
    let j = i;
    while (j < times.length && times[j] < times[i] + windowMs) j++;
    max = Math.max(max, j - i);
  }
  return max;
}

/** A gateway with Discord's HELLO interval that ends each session right after READY or RESUMED, until `stop()`. */
async function churningGateway(): Promise<{ g: LocalGateway; stop: () => void }> {
  const g = (gateway = await startGateway({ heartbeatInterval: DISCORD_HEARTBEAT_MS }));
  let closing = true;
  g.on('ready', () => {
    if (closing) g.closeShard(0, 4000);
  });
  return { g, stop: () => (closing = false) };
}

void describe('reconnect discipline', () => {
  void describe('backoff and the reconnect cap, in virtual time', () => {
    // Default policy, jitter factor 0.75: attempt 1 immediate (the first connection was a fresh start), then
    // 750, 1500, 3000, 6000, 12000, 24000 ms: eight connections in the first minute, where the old policy
    // reconnected at 0 ms forever.
    const EXPECTED_FIRST_MINUTE = [0, 0, 750, 2_250, 5_250, 11_250, 23_250, 47_250];

    void it('a session that dies right after READY or RESUMED backs off: 8 connections in the first minute, not a storm', async () => {
      const { g } = await churningGateway();
      shard = defaultPolicyShard(g, { compression: false });
      const times = await connectionTimes(shard, g, 60_000);
      expect(times).toEqual(EXPECTED_FIRST_MINUTE);
      expect(g.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);
      expect(g.framesOf(GatewayOpcodes.Resume)).toHaveLength(EXPECTED_FIRST_MINUTE.length - 1);
    });

    const poisons: [string, Partial<ShardOptions>, (g: LocalGateway) => void][] = [
      ['corrupt zlib', {}, (g) => g.sendCorruptZlib(0)],
      ['a decompression bomb', { maxMessageBytes: 64 * 1024 }, (g) => g.connectionOf(0)!.sendText(`{"op":0,"t":"X","s":999,"d":"${' '.repeat(1024 * 1024)}"}`)],
      ['invalid JSON', {}, (g) => g.sendInvalidJson(0)],
    ];
    for (const [name, options, poison] of poisons) {
      void it(`a poison message replayed after each READY or RESUMED (${name}) gets the same backoff`, async () => {
        gateway = await startGateway({ heartbeatInterval: DISCORD_HEARTBEAT_MS });
        const g = gateway;
        shard = defaultPolicyShard(g, options);
        // Right after the shard took READY or RESUMED (a raw frame sent on the gateway's 'ready' could overtake the
        // compressed READY).
        shard.dispatch$.subscribe((event) => {
          if (event.t === 'READY' || event.t === 'RESUMED') poison(g);
        });
        const errors: Error[] = [];
        shard.error$.subscribe((error) => errors.push(error));
        const times = await connectionTimes(shard, g, 60_000);
        expect(times).toEqual(EXPECTED_FIRST_MINUTE);
        expect(errors).toHaveLength(EXPECTED_FIRST_MINUTE.length);
        expect(shard.counters.reconnectsByReason.get('decode-error')).toBe(EXPECTED_FIRST_MINUTE.length);
      });
    }

    void it('never opens more than reconnectLimit.max connections in any reconnectLimit.windowMs, whatever the backoff', async () => {
      const { g } = await churningGateway();
      const capped: string[] = [];
      shard = defaultPolicyShard(g, { compression: false, backoff: { baseMs: 100, maxMs: 100 }, reconnectLimit: { max: 5, windowMs: 60_000 } });
      shard.debug$.subscribe((line) => {
        if (line.includes('at most 5 connections per 60000 ms')) capped.push(line);
      });
      const times = await connectionTimes(shard, g, 120_000);
      // Backoff alone would reconnect every 75 ms; the window lets five in, then the sixth waits for the oldest
      // (at 0) to leave it at 60000, and so on.
      expect(times).toEqual([0, 0, 75, 150, 225, 60_000, 60_075, 60_150, 60_225, 60_300]);
      expect(maxInWindow(times, 60_000)).toBe(5);
      expect(capped).toHaveLength(2);
    });

    void it('resets the backoff only after the connection stayed ready for max(heartbeat interval, resetAfterMs)', async () => {
      const { g, stop } = await churningGateway();
      shard = defaultPolicyShard(g, { compression: false });
      const target = shard;
      const delays = reconnectDelays(target);
      target.connect().catch(() => undefined);
      expect(await delays.next()).toBe(0);
      clock.advance(0);
      expect(await delays.next()).toBe(750);
      stop();
      const resumed = waitFor(target.dispatch$, (event) => event.t === 'RESUMED');
      clock.advance(750);
      await resumed;
      // READY or RESUMED alone resets nothing.
      expect(target.info().reconnectAttempts).toBe(2);
      clock.advance(DISCORD_HEARTBEAT_MS - 1);
      expect(target.info().reconnectAttempts).toBe(2);
      clock.advance(1);
      expect(target.info().reconnectAttempts).toBe(0);

      // A connection that proved healthy is retried at once when it ends.
      g.closeShard(0, 4000);
      expect(await delays.next()).toBe(0);
    });

    void it('uses resetAfterMs when it is longer than the heartbeat interval', async () => {
      const { g, stop } = await churningGateway();
      shard = defaultPolicyShard(g, { compression: false, backoff: { resetAfterMs: 60_000 } });
      const target = shard;
      const delays = reconnectDelays(target);
      target.connect().catch(() => undefined);
      expect(await delays.next()).toBe(0);
      stop();
      const resumed = waitFor(target.dispatch$, (event) => event.t === 'RESUMED');
      clock.advance(0);
      await resumed;
      expect(target.info().reconnectAttempts).toBe(1);
      // One heartbeat goes out at 20625 ms; the first check for its ACK comes at 61875 ms, after the reset.
      clock.advance(59_999);
      expect(target.info().reconnectAttempts).toBe(1);
      clock.advance(1);
      expect(target.info().reconnectAttempts).toBe(0);
    });
  });

  void describe('options', () => {
    void it('defaults to a 1 s base, a 60 s cap, a 30 s reset, 10 connections per minute and HELLO intervals of 100 ms to 300 s', () => {
      expect(DefaultShardOptions.backoff).toEqual({ baseMs: 1_000, maxMs: 60_000, resetAfterMs: 30_000 });
      expect(DefaultShardOptions.reconnectLimit).toEqual({ max: 10, windowMs: 60_000 });
      expect(DefaultShardOptions.heartbeatIntervalRange).toEqual({ minMs: 100, maxMs: 300_000 });
    });
  });

  void describe('HELLO heartbeat_interval', () => {
    for (const interval of [1, 0.001, 99, 300_001, 1e12]) {
      void it(`treats ${interval} ms as a protocol error: no heartbeat, no handshake, reconnects with backoff`, async () => {
        gateway = await startGateway({ heartbeatInterval: interval });
        const g = gateway;
        shard = createShard(g, { compression: false, random: () => 0.5 });
        const errors: Error[] = [];
        const delays: number[] = [];
        shard.error$.subscribe((error) => errors.push(error));
        shard.debug$.subscribe((line) => {
          const match = /reconnect attempt \d+ in (\d+) ms/.exec(line);
          if (match) delays.push(Number(match[1]));
        });
        const third = g.waitForConnection((c) => c.id === 3);
        shard.connect().catch(() => undefined);
        await third;
        await shard.close();

        expect(g.frames).toEqual([]);
        expect(errors.length).toBeGreaterThanOrEqual(2);
        expect(errors[0].message).toContain(`HELLO heartbeat_interval ${interval} ms is outside 100..300000 ms`);
        // Test backoff (20 ms base) with a jitter factor of 0.75.
        expect(delays.slice(0, 2)).toEqual([0, 15]);
      });
    }

    for (const interval of [100, 300_000]) {
      void it(`accepts ${interval} ms, the edge of the default range`, async () => {
        gateway = await startGateway({ heartbeatInterval: interval });
        shard = createShard(gateway, { compression: false, random: () => 0.5 });
        await shard.connect();
        expect(shard.state).toBe(ShardState.Ready);
        expect(shard.counters.reconnectsByReason.size).toBe(0);
      });
    }

    void it('takes a narrower range from heartbeatIntervalRange', async () => {
      gateway = await startGateway({ heartbeatInterval: 300 });
      shard = createShard(gateway, { compression: false, heartbeatIntervalRange: { minMs: 1_000 } });
      const error = waitFor(shard.error$, () => true);
      shard.connect().catch(() => undefined);
      expect((await error).message).toContain('HELLO heartbeat_interval 300 ms is outside 1000..300000 ms');
    });
  });

  void describe('heartbeat requests (op 1)', () => {
    /** Sends `count` op 1 in one burst, then makes sure the shard has handled all of them and the gateway read its answers. */
    async function burst(g: LocalGateway, target: Shard, count: number): Promise<void> {
      for (let i = 0; i < count; i++) g.requestHeartbeat(0);
      const marked = waitFor(target.dispatch$, (event) => event.t === 'MARK');
      g.dispatch(0, 'MARK', null);
      await marked;
      const frame = g.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 5_000, 0);
      await target.send({ op: GatewayOpcodes.PresenceUpdate, d: { since: null, activities: [], status: 'online' as never, afk: false } });
      await frame;
    }

    void it('answers one at a time: 10,000 requests without an ACK get one heartbeat, taken from the send budget', async () => {
      gateway = await startGateway({ heartbeatInterval: 30_000 });
      // The first scheduled heartbeat would come after 29.7 s: every heartbeat seen here was requested.
      shard = createShard(gateway, { compression: false, random: () => 0.99 });
      await shard.connect();
      const connection = gateway.connectionOf(0)!;
      const budgetBefore = shard.commandBudget().remaining;
      gateway.setAcks(0, false);
      await burst(gateway, shard, 10_000);

      expect(connection.frames.filter((f) => f.op === GatewayOpcodes.Heartbeat)).toHaveLength(1);
      // One frame for the heartbeat, one for the presence update.
      expect(shard.commandBudget().remaining).toBe(budgetBefore - 2);
      expect(connection.open).toBe(true);
    });

    void it('10,000 requests with every heartbeat acknowledged never push the connection past 120 frames per window', async () => {
      gateway = await startGateway({ heartbeatInterval: 30_000 });
      shard = createShard(gateway, { compression: false, random: () => 0.99 });
      await shard.connect();
      const connection = gateway.connectionOf(0)!;
      await burst(gateway, shard, 10_000);

      const beats = connection.frames.filter((f) => f.op === GatewayOpcodes.Heartbeat).length;
      expect(beats).toBeGreaterThanOrEqual(1);
      // 120 frames less the 2 kept for scheduled heartbeats, the IDENTIFY and the presence update.
      expect(beats).toBeLessThanOrEqual(116);
      expect(connection.frames.length).toBeLessThanOrEqual(120);
      expect(connection.open).toBe(true);
      expect(gateway.connections).toHaveLength(1);
    });
  });

  void describe('sequence numbers', () => {
    const messages = (events: { t: string; d: unknown }[]) =>
      events.filter((e) => e.t === 'MESSAGE_CREATE').map((e) => (e.d as { id: string }).id);

    for (const [name, jump] of [
      ['2^53 - 1', (last: number) => Number.MAX_SAFE_INTEGER + 0 * last],
      [`last + ${MAX_SEQUENCE_JUMP + 1}`, (last: number) => last + MAX_SEQUENCE_JUMP + 1],
    ] as const) {
      void it(`a dispatch whose s jumps to ${name} is a protocol error: not delivered, and the session resumes from the last good number`, async () => {
        gateway = await startGateway();
        const g = gateway;
        shard = createShard(g, { compression: false, random: () => 0.5 });
        const target = shard;
        await target.connect();
        const { events } = collectDispatches(target);
        const errors: Error[] = [];
        target.error$.subscribe((error) => errors.push(error));
        const a = g.dispatch(0, 'MESSAGE_CREATE', { id: 'a' });
        await waitFor(target.dispatch$, (e) => e.s === a);

        const resumed = nextDispatch(target, 'RESUMED');
        g.sendPayload(0, { op: 0, t: 'MESSAGE_CREATE', s: jump(a), d: { id: 'bogus' } });
        g.dispatch(0, 'MESSAGE_CREATE', { id: 'b' });
        await resumed;
        const c = g.dispatch(0, 'MESSAGE_CREATE', { id: 'c' });
        await waitFor(target.dispatch$, (e) => e.s === c);

        expect(messages(events)).toEqual(['a', 'b', 'c']);
        expect(errors.map((e) => e.message)).toEqual([expect.stringContaining(`#${jump(a)} jumps more than ${MAX_SEQUENCE_JUMP} past sequence ${a}`)]);
        expect(g.framesOf(GatewayOpcodes.Resume).map((f) => f.d.seq)).toEqual([a]);
      });
    }

    for (const afterResume of [false, true]) {
      void it(`a READY replayed on a connection that ${afterResume ? 'resumed' : 'is already ready'} resets nothing and delivers nothing twice`, async () => {
        gateway = await startGateway();
        const g = gateway;
        // An identify queue that grants at once: the second IDENTIFY need not wait for the default 5 s window.
        shard = createShard(g, { compression: false, random: () => 0.5, identifyQueue: { acquire: () => Promise.resolve() } });
        const target = shard;
        await target.connect();
        const sessionId = target.session!.sessionId;
        const { events } = collectDispatches(target);
        const ids = Array.from({ length: 10 }, (_, i) => `e${i}`);
        const sent = ids.map((id) => ({ id, s: g.dispatch(0, 'MESSAGE_CREATE', { id }) }));
        await waitFor(target.dispatch$, (e) => e.s === sent[9].s);
        if (afterResume) {
          const resumed = nextDispatch(target, 'RESUMED');
          g.reconnect(0);
          await resumed;
        }

        // The session's READY (s = 1) and its ten events, sent again.
        g.sendPayload(0, { op: 0, t: 'READY', s: 1, d: { session_id: 'replayed', resume_gateway_url: g.resumeUrl, v: 10, guilds: [] } });
        for (const { id, s } of sent) g.sendPayload(0, { op: 0, t: 'MESSAGE_CREATE', s, d: { id } });
        const after = g.dispatch(0, 'MESSAGE_CREATE', { id: 'after' });
        await waitFor(target.dispatch$, (e) => e.s === after);

        expect(messages(events)).toEqual([...ids, 'after']);
        expect(events.filter((e) => e.t === 'READY')).toHaveLength(0);
        expect(target.session?.sessionId).toBe(sessionId);
        expect(target.info().sequence).toBe(after);

        // A real new session still starts over at 1.
        const ready = nextDispatch(target, 'READY');
        g.invalidateSession(0, false);
        const fresh = await ready;
        expect(fresh.s).toBe(1);
        expect(target.session?.sessionId).not.toBe(sessionId);
        const first = g.dispatch(0, 'MESSAGE_CREATE', { id: 'new session' });
        expect(first).toBe(2);
        await waitFor(target.dispatch$, (e) => e.s === first && (e.d as { id: string }).id === 'new session');
      });
    }
  });
});
