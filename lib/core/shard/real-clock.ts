import type { Clock, ClockTimer } from '../interfaces/clock.interface';

/** A timer of the {@link RealClock}: Node's own timer inside. */
class RealTimer implements ClockTimer {
  constructor(readonly handle: NodeJS.Timeout) {}

  unref(): void {
    this.handle.unref();
  }
}

/**
 * The default {@link Clock}: Node's timers, and whole milliseconds of `performance.now()`, a clock that never jumps
 * (unlike `Date.now()` under NTP corrections).
 */
export class RealClock implements Clock {
  now(): number {
    return Math.floor(performance.now());
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    return new RealTimer(setTimeout(callback, ms));
  }

  clearTimeout(timer: ClockTimer): void {
    if (timer instanceof RealTimer) clearTimeout(timer.handle);
  }

  setInterval(callback: () => void, ms: number): ClockTimer {
    return new RealTimer(setInterval(callback, ms));
  }

  clearInterval(timer: ClockTimer): void {
    if (timer instanceof RealTimer) clearInterval(timer.handle);
  }
}

/** The real clock every part of the library uses unless given another one. */
export const realClock: Clock = new RealClock();
