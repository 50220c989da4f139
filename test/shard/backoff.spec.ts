import { describe, it, afterEach, mock } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { backoffDelay, Shard, ShardState, type GatewayDispatch } from '../../lib/nest';
import { VirtualClock, type LocalGateway } from '../../lib/nest/testing';
import { createShard, eventually, nextDispatch, startGateway, waitFor } from '../helpers/gateway-test-kit';

/** Parses the shard's "reconnect attempt N in D ms" debug lines. */
function recordReconnects(target: Shard): { attempts: { attempt: number; delay: number }[]; stop: () => void } {
  const attempts: { attempt: number; delay: number }[] = [];
  const sub = target.debug$.subscribe((line) => {
    const match = /reconnect attempt (\d+) in (\d+) ms/.exec(line);
    if (match) attempts.push({ attempt: Number(match[1]), delay: Number(match[2]) });
  });
  return { attempts, stop: () => sub.unsubscribe() };
}

/** A small deterministic generator of numbers in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

void describe('backoffDelay', () => {
  const options = { baseMs: 1_000, maxMs: 60_000 };

  void it('the first attempt after a healthy connection is immediate, whatever the random source says', () => {
    for (const r of [0, 0.3, 0.999]) {
      expect(backoffDelay(0, options, () => r)).toBe(0);
      expect(backoffDelay(-1, options, () => r)).toBe(0);
    }
  });

  void it('doubles with each attempt until the cap', () => {
    const low = () => 0;
    const delays = [1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, options, low));
    expect(delays).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000]);
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBe(delays[i - 1] * 2);
  });

  void it('never exceeds maxMs, even for huge attempt numbers', () => {
    const high = () => 0.999_999;
    for (const attempt of [7, 8, 20, 31, 32, 100, 1_000_000]) {
      const delay = backoffDelay(attempt, options, high);
      expect(Number.isFinite(delay)).toBe(true);
      expect(delay).toBeLessThanOrEqual(options.maxMs);
      expect(delay).toBeGreaterThanOrEqual(options.maxMs / 2);
    }
    // 1000 * 2^6 = 64000 is past the cap, so the cap is the ceiling.
    expect(backoffDelay(7, options, () => 0)).toBe(30_000);
    expect(backoffDelay(7, options, () => 0.5)).toBe(45_000);
  });

  void it('a small cap wins over the base from the first attempt', () => {
    expect(backoffDelay(1, { baseMs: 5_000, maxMs: 2_000 }, () => 0)).toBe(1_000);
    expect(backoffDelay(3, { baseMs: 5_000, maxMs: 2_000 }, () => 0.5)).toBe(1_500);
  });

  void it('jitter scales the ceiling by a factor in [0.5, 1) taken from the random source', () => {
    // Attempt 4: ceiling 8000.
    expect(backoffDelay(4, options, () => 0)).toBe(4_000);
    expect(backoffDelay(4, options, () => 0.25)).toBe(5_000);
    expect(backoffDelay(4, options, () => 0.5)).toBe(6_000);
    expect(backoffDelay(4, options, () => 0.99)).toBe(7_960);

    const random = seededRandom(42);
    const seen = new Set<number>();
    for (let i = 0; i < 1_000; i++) {
      const attempt = 1 + (i % 10);
      const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** (attempt - 1));
      const delay = backoffDelay(attempt, options, random);
      expect(delay).toBeGreaterThanOrEqual(ceiling * 0.5);
      // Below the ceiling up to rounding to whole milliseconds.
      expect(delay).toBeLessThanOrEqual(ceiling);
      if (attempt === 10) seen.add(delay);
    }
    // Different draws give different delays: the jitter is really applied.
    expect(seen.size).toBeGreaterThan(50);
  });

  void it('consults the injected random source for each non-zero delay', () => {
    const random = mock.fn(() => 0.5);
    backoffDelay(0, options, random);
    expect(random.mock.callCount()).toBe(0);
    backoffDelay(3, options, random);
    backoffDelay(9, options, random);
    expect(random.mock.callCount()).toBe(2);
  });
});

void describe('reconnect backoff of a live shard', () => {
  let gateway: LocalGateway | null = null;
  let shard: Shard | null = null;

  void afterEach(async () => {
    if (shard) await shard.close();
    if (gateway) await gateway.close();
    shard = null;
    gateway = null;
  });

  void it('keeps retrying a gateway that refuses connections, with growing and capped delays, and never stops', async () => {
    // A port that was just released: nothing listens there, so each attempt is refused.
    const closedGateway = await startGateway();
    const refusedUrl = closedGateway.url;
    await closedGateway.close();

    const clock = new VirtualClock();
    shard = new Shard({
      id: 0,
      total: 1,
      token: 'local-gateway-token',
      intents: 513,
      gatewayUrl: refusedUrl,
      helloTimeout: 1_000,
      backoff: { baseMs: 20, maxMs: 200 },
      random: () => 0.5,
      clock,
    });
    const target = shard;
    const opened: number[] = [];
    target.debug$.subscribe((line) => {
      if (line.startsWith('connecting to')) opened.push(clock.now());
    });
    const reconnects = recordReconnects(target);
    const connecting = target.connect();
    const connectOutcome = connecting.then(
      () => 'resolved',
      (error: Error) => error,
    );

    // Each refusal schedules the next attempt on the clock; the test moves the clock by exactly that delay.
    for (let attempt = 1; attempt <= 8; attempt++) {
      await eventually(() => reconnects.attempts.length >= attempt, 8_000, `reconnect attempt ${attempt}`);
      clock.advance(reconnects.attempts[attempt - 1].delay);
    }
    reconnects.stop();

    expect(target.fatalError).toBeNull();
    expect(target.state).not.toBe(ShardState.FatallyClosed);
    expect(target.info().lastClose?.code).toBe(1006);
    const seen = reconnects.attempts.slice(0, 8);
    expect(seen.map((a) => a.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // random 0.5 gives 0.75 of the ceiling: min(200, 20 * 2^(n-1)) * 0.75.
    expect(seen.map((a) => a.delay)).toEqual([0, 15, 30, 60, 120, 150, 150, 150]);
    // Each connection opened exactly when its delay ran out, in ms of the shard's clock.
    expect(opened).toEqual([0, 0, 15, 45, 105, 225, 375, 525, 675]);

    await target.close();
    // connect() was still waiting: closing the shard ends the wait, with an error that is not fatal.
    const outcome = await connectOutcome;
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).name).not.toBe('GatewayFatalError');
  });

  void it('counts failed attempts while HELLO never comes, then resumes, and resets the counter once the connection stayed healthy', async () => {
    // A long heartbeat interval: the backoff resets after max(interval, resetAfterMs) = 60000 ms, with a single
    // heartbeat (at 30000 ms) on the way.
    gateway = await startGateway({ heartbeatInterval: 60_000 });
    const clock = new VirtualClock();
    shard = createShard(gateway, { helloTimeout: 150, random: () => 0.5, clock });
    const g = gateway;
    const target = shard;
    await target.connect();
    const sessionId = target.session!.sessionId;
    const reconnects = recordReconnects(target);

    g.behaviour.sendHello = false;
    const connectionsBefore = g.connections.length;
    g.reconnect(0);
    // Attempt 1 follows the op 7; each later one follows a connection that got no HELLO within 150 ms. The fifth
    // connection gets its HELLO.
    const opened: number[] = [];
    const resumed = nextDispatch(target, 'RESUMED', 8_000);
    for (let attempt = 1; attempt <= 5; attempt++) {
      await eventually(() => reconnects.attempts.length >= attempt, 8_000, `reconnect attempt ${attempt}`);
      if (attempt === 5) g.behaviour.sendHello = true;
      const connection = g.waitForConnection();
      clock.advance(reconnects.attempts[attempt - 1].delay);
      await connection;
      opened.push(clock.now());
      if (attempt < 5) clock.advance(150);
    }
    await resumed;

    expect(target.counters.reconnectsByReason.get('hello-timeout')).toBe(4);
    expect(reconnects.attempts.map((a) => a.delay)).toEqual([0, 15, 30, 60, 120]);
    // Each silent connection is dropped 150 ms after it opened; the next opens once the backoff delay has passed.
    expect(opened).toEqual([0, 165, 345, 555, 825]);
    const silent = g.connections.slice(connectionsBefore, -1);
    expect(silent).toHaveLength(4);
    expect(silent.every((c) => c.path === '/resume' && c.frames.length === 0)).toBe(true);

    expect(target.state).toBe(ShardState.Ready);
    expect(target.session?.sessionId).toBe(sessionId);
    expect(g.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);
    // RESUMED alone does not reset the backoff: only max(heartbeat interval, backoff.resetAfterMs) = 60000 ms of
    // staying ready does, to the millisecond.
    expect(target.info().reconnectAttempts).toBe(5);
    clock.advance(59_999);
    expect(target.info().reconnectAttempts).toBe(5);
    clock.advance(1);
    expect(target.info().reconnectAttempts).toBe(0);

    // The next disconnect starts from the first, immediate, attempt again.
    const countBefore = reconnects.attempts.length;
    const resumedAgain = nextDispatch(target, 'RESUMED');
    g.reconnect(0);
    await eventually(() => reconnects.attempts.length > countBefore, 8_000, 'the next reconnect attempt');
    clock.advance(0);
    await resumedAgain;
    reconnects.stop();
    expect(reconnects.attempts.slice(countBefore)).toEqual([{ attempt: 1, delay: 0 }]);
    // Until this connection proves healthy in turn, the next reconnect would be attempt 2.
    expect(target.info().reconnectAttempts).toBe(1);
  });

  void it('survives 200 reconnect requests in a row, backing off within its cap, without losing events', { timeout: 20_000 }, async () => {
    gateway = await startGateway();
    // A cap of 2 ms and room for every connection: the point here is that nothing is lost, not the waiting.
    shard = createShard(gateway, {
      random: () => 0.5,
      backoff: { baseMs: 1, maxMs: 2, resetAfterMs: 60_000 },
      reconnectLimit: { max: 1_000, windowMs: 6_000 },
    });
    const g = gateway;
    const target = shard;
    await target.connect();
    const sessionId = target.session!.sessionId;
    const events: GatewayDispatch[] = [];
    const sub = target.dispatch$.subscribe((e) => events.push(e));
    const reconnects = recordReconnects(target);
    const sentIds: string[] = [];

    for (let i = 0; i < 200; i++) {
      const resumed = nextDispatch(target, 'RESUMED');
      g.reconnect(0);
      // Sent right after op 7: delivered live or replayed on RESUME, but never lost.
      const id = `m${i}`;
      g.dispatch(0, 'MESSAGE_CREATE', { id });
      sentIds.push(id);
      await resumed;
      expect(target.state).toBe(ShardState.Ready);
    }

    const last = g.dispatch(0, 'MESSAGE_CREATE', { id: 'final' });
    sentIds.push('final');
    await waitFor(target.dispatch$, (e) => e.s === last);
    sub.unsubscribe();
    reconnects.stop();

    expect(target.state).toBe(ShardState.Ready);
    expect(target.session?.sessionId).toBe(sessionId);
    // No connection stayed up for resetAfterMs: the attempts add up, and the delays stay within the 2 ms cap.
    expect(target.info().reconnectAttempts).toBe(200);
    expect(reconnects.attempts.map((a) => a.attempt)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(reconnects.attempts[0].delay).toBe(0);
    expect(reconnects.attempts.slice(1).every((a) => a.delay >= 1 && a.delay <= 2)).toBe(true);

    expect(g.framesOf(GatewayOpcodes.Resume)).toHaveLength(200);
    expect(g.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);

    // Sequence numbers run without a gap or a repeat, and every message arrived once, in order.
    for (let i = 1; i < events.length; i++) expect(events[i].s).toBe(events[i - 1].s + 1);
    const messages = events.filter((e) => e.t === 'MESSAGE_CREATE').map((e) => (e.d as { id: string }).id);
    expect(messages).toEqual(sentIds);
    expect(events.filter((e) => e.t === 'RESUMED')).toHaveLength(200);
  });
});
