import type { Clock, ClockTimer } from '../interfaces/clock.interface';

/** A timer of the {@link VirtualClock}. */
class VirtualTimer implements ClockTimer {
  constructor(
    /** Creation order: timers due at the same time fire in the order they were started. */
    readonly order: number,
    /** Virtual time at which it fires next, ms. */
    public dueAt: number,
    /** Period of an interval timer, ms; null for a one-shot timer. */
    readonly everyMs: number | null,
    readonly callback: () => void,
  ) {}

  unref(): void {
    // A virtual timer keeps no process alive.
  }
}

/**
 * A {@link Clock} whose time moves only when a test moves it, for timing rules asserted to the millisecond:
 * give it as the `clock` option of a `Shard`, `Cluster`, identify queue or `ShardOwnership`, then
 * {@link advance} it. Timers fire in order of their due time, and in the order they were started when due together;
 * the clock reads each timer's due time while its callback runs. Nothing fires until the clock is moved, not even a
 * timer of 0 ms.
 *
 * ```ts
 * const clock = new VirtualClock();
 * const shard = new Shard({ ...options, clock });
 * clock.advance(41_250); // one heartbeat interval, at once
 * ```
 */
export class VirtualClock implements Clock {
  private time: number;
  private started = 0;
  private readonly timers = new Set<VirtualTimer>();

  /** @param startMs the time the clock starts at, ms. @defaultValue `0` */
  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    return this.start(callback, ms, null);
  }

  clearTimeout(timer: ClockTimer): void {
    if (timer instanceof VirtualTimer) this.timers.delete(timer);
  }

  setInterval(callback: () => void, ms: number): ClockTimer {
    return this.start(callback, ms, Math.max(1, delayOf(ms)));
  }

  clearInterval(timer: ClockTimer): void {
    this.clearTimeout(timer);
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.size;
  }

  /** When the next timer fires, ms of virtual time, or null when none is waiting. */
  get nextDueAt(): number | null {
    return this.next()?.dueAt ?? null;
  }

  /**
   * Moves the time forward by `ms`, firing every timer that falls due on the way (those the callbacks start too), in
   * order. Returns the number of callbacks run.
   */
  advance(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`VirtualClock.advance: ms must be a finite number >= 0, got ${ms}`);
    const until = this.time + ms;
    let fired = 0;
    for (let timer = this.next(); timer && timer.dueAt <= until; timer = this.next()) {
      this.fire(timer);
      fired++;
    }
    this.time = until;
    return fired;
  }

  /** Moves the time to the next timer and fires it (with any due at the same time). Returns the callbacks run. */
  advanceToNext(): number {
    const dueAt = this.nextDueAt;
    return dueAt === null ? 0 : this.advance(dueAt - this.time);
  }

  /**
   * Fires timers, moving the time to each, until none is left. Interval timers never run out, so this stops with an
   * error after `maxTimers` callbacks. Returns the callbacks run.
   */
  runAll(maxTimers = 10_000): number {
    let fired = 0;
    for (let timer = this.next(); timer; timer = this.next()) {
      if (fired >= maxTimers) throw new Error(`VirtualClock.runAll: still ${this.timers.size} timer(s) after ${maxTimers} callbacks (an interval?)`);
      this.time = Math.max(this.time, timer.dueAt);
      this.fire(timer);
      fired++;
    }
    return fired;
  }

  private start(callback: () => void, ms: number, everyMs: number | null): VirtualTimer {
    const timer = new VirtualTimer(this.started++, this.time + (everyMs ?? delayOf(ms)), everyMs, callback);
    this.timers.add(timer);
    return timer;
  }

  private next(): VirtualTimer | undefined {
    let first: VirtualTimer | undefined;
    for (const timer of this.timers) {
      if (!first || timer.dueAt < first.dueAt || (timer.dueAt === first.dueAt && timer.order < first.order)) first = timer;
    }
    return first;
  }

  private fire(timer: VirtualTimer): void {
    this.time = timer.dueAt;
    if (timer.everyMs === null) this.timers.delete(timer);
    else timer.dueAt += timer.everyMs;
    timer.callback();
  }
}

/** A delay as the clock takes it: a negative or non-finite delay is 0. */
function delayOf(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}
