import { describe, it } from 'node:test';
import { expect } from 'expect';
import { CommandRateLimiter } from '../../lib/nest';
import { VirtualClock } from '../../lib/nest/testing';

function takeAll(limiter: CommandRateLimiter, max = 1_000): number {
  let taken = 0;
  while (taken < max && limiter.tryTake()) taken++;
  return taken;
}

void describe('CommandRateLimiter (120 frames per 60 s, injected clock)', () => {
  const LIMIT = 120;
  const WINDOW = 60_000;

  void it('reserves ceil(window / heartbeat interval) + 1 frames for heartbeats', () => {
    const clock = new VirtualClock(1_000_000);
    const limiter = new CommandRateLimiter(LIMIT, WINDOW, clock);
    expect(limiter.reservedFrames).toBe(0);

    limiter.reserveForHeartbeats(41_250);
    expect(limiter.reservedFrames).toBe(Math.ceil(60_000 / 41_250) + 1); // 3

    limiter.reserveForHeartbeats(45_000);
    expect(limiter.reservedFrames).toBe(3);

    limiter.reserveForHeartbeats(30_000); // exact division: 2 + 1
    expect(limiter.reservedFrames).toBe(3);

    limiter.reserveForHeartbeats(10_000);
    expect(limiter.reservedFrames).toBe(7);
  });

  void it('never reserves the whole window, so at least one command can still go out', () => {
    const clock = new VirtualClock(1_000_000);
    const limiter = new CommandRateLimiter(LIMIT, WINDOW, clock);
    limiter.reserveForHeartbeats(100); // would be 601
    expect(limiter.reservedFrames).toBe(LIMIT - 1);
    expect(limiter.remaining()).toBe(1);
    expect(limiter.tryTake()).toBe(true);
    expect(limiter.tryTake()).toBe(false);
  });

  void it('lets user commands take at most limit - reserved frames of an empty window', () => {
    const clock = new VirtualClock(1_000_000);
    const limiter = new CommandRateLimiter(LIMIT, WINDOW, clock);
    limiter.reserveForHeartbeats(41_250);
    const reserved = limiter.reservedFrames;

    expect(limiter.remaining()).toBe(LIMIT - reserved);
    expect(takeAll(limiter)).toBe(LIMIT - reserved);
    expect(limiter.remaining()).toBe(0);
    expect(limiter.tryTake()).toBe(false);
    // A refused take does not use up room.
    clock.advance(WINDOW);
    expect(limiter.remaining()).toBe(LIMIT - reserved);
  });

  void it('counts recorded frames (IDENTIFY, RESUME) against the same window', () => {
    const clock = new VirtualClock(1_000_000);
    const limiter = new CommandRateLimiter(LIMIT, WINDOW, clock);
    limiter.reserveForHeartbeats(41_250);
    limiter.record(); // IDENTIFY
    limiter.record(); // RESUME
    expect(limiter.remaining()).toBe(LIMIT - limiter.reservedFrames - 2);
    expect(takeAll(limiter)).toBe(LIMIT - limiter.reservedFrames - 2);
  });

  void it('refills as old frames slide out of the window, one by one', () => {
    const clock = new VirtualClock(1_000_000);
    const limiter = new CommandRateLimiter(LIMIT, WINDOW, clock);
    limiter.reserveForHeartbeats(41_250);
    const room = LIMIT - limiter.reservedFrames;

    // Ten commands at t=0, the rest spread at t=1000.
    for (let i = 0; i < 10; i++) expect(limiter.tryTake()).toBe(true);
    clock.advance(1_000);
    expect(takeAll(limiter)).toBe(room - 10);
    expect(limiter.tryTake()).toBe(false);

    // One millisecond before the first ten leave the window: still full.
    clock.advance(WINDOW - 1_000 - 1);
    expect(limiter.remaining()).toBe(0);
    expect(limiter.tryTake()).toBe(false);

    // Exactly one window after them: those ten have left.
    clock.advance(1);
    expect(limiter.remaining()).toBe(10);
    expect(takeAll(limiter)).toBe(10);
    expect(limiter.tryTake()).toBe(false);

    // One window after the second batch: it has left too.
    clock.advance(1_000);
    expect(limiter.remaining()).toBe(room - 10);
  });

  void it('reports how long until the oldest frame leaves the window', () => {
    const clock = new VirtualClock(1_000_000);
    const limiter = new CommandRateLimiter(LIMIT, WINDOW, clock);
    expect(limiter.msUntilRefill()).toBe(0);

    limiter.record();
    expect(limiter.msUntilRefill()).toBe(WINDOW);
    clock.advance(15_000);
    limiter.tryTake();
    expect(limiter.msUntilRefill()).toBe(WINDOW - 15_000);

    clock.advance(44_999);
    expect(limiter.msUntilRefill()).toBe(1);

    // The first frame leaves; the next oldest (taken at +15 s) now decides.
    clock.advance(1);
    expect(limiter.msUntilRefill()).toBe(15_000);

    clock.advance(15_000);
    expect(limiter.msUntilRefill()).toBe(0);
    expect(limiter.remaining()).toBe(LIMIT);
  });

  void it('keeps any sliding window within the limit when heartbeats and a command flood interleave', () => {
    const clock = new VirtualClock(0);
    const interval = 41_250;
    const limiter = new CommandRateLimiter(LIMIT, WINDOW, clock);
    limiter.reserveForHeartbeats(interval);
    const sentAt: number[] = [];
    let nextBeat = Math.floor(interval * 0.5);
    // Simulate 5 minutes in 250 ms steps: heartbeats always go out, commands whenever allowed.
    for (let t = 0; t <= 300_000; t += 250) {
      clock.advance(t - clock.now());
      if (t >= nextBeat) {
        limiter.record();
        sentAt.push(t);
        nextBeat += interval;
      }
      while (limiter.tryTake()) sentAt.push(t);
    }
    let worst = 0;
    for (let i = 0, j = 0; i < sentAt.length; i++) {
      while (sentAt[i] - sentAt[j] >= WINDOW) j++;
      worst = Math.max(worst, i - j + 1);
    }
    expect(worst).toBeLessThanOrEqual(LIMIT);
    // The flood did use the room it had.
    expect(sentAt.length).toBeGreaterThan(5 * (LIMIT - limiter.reservedFrames - 2));
  });

  void it('calls a heartbeat interval a conflict exactly when heartbeats and IDENTIFY leave no frame for commands', () => {
    const limiter = new CommandRateLimiter(LIMIT, WINDOW);
    const configured = { limit: LIMIT, windowMs: WINDOW };
    // 520 ms: ceil(60000 / 520) + 1 = 117 heartbeats, IDENTIFY 1: 2 frames left.
    expect(limiter.heartbeatConflict(520, configured)).toBeNull();
    // 510 ms: 119 heartbeats + IDENTIFY = 120: none left.
    expect(limiter.heartbeatConflict(510, configured)).toMatch(/^the gateway's heartbeat_interval of 510 ms .* needs 119 heartbeats per command window, but commandRateLimit allows 120 frames per 60000 ms/);
    expect(limiter.heartbeatConflict(41_250, configured)).toBeNull();
    expect(new CommandRateLimiter(LIMIT, 6_000).heartbeatConflict(300, { limit: LIMIT, windowMs: 6_000 })).toBeNull();
  });
});
