/** A timer started by a {@link Clock}; pass it back to the same clock to cancel it. */
export interface ClockTimer {
  /** Lets the process exit while this timer is pending (a clock that keeps no process alive ignores it). */
  unref(): void;
}

/**
 * Where the library reads the time and starts its timers: heartbeats, handshake timeouts, reconnect backoff, identify
 * windows, guild-availability waits, lease renewals and session saves. The default is {@link RealClock}; tests pass a
 * `VirtualClock` (`nestjs-discord-gateway/testing`) to run timing rules in virtual time.
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin; never goes backwards on the real clock's monotonic source. */
  now(): number;
  /** Calls `callback` once, `ms` from now. */
  setTimeout(callback: () => void, ms: number): ClockTimer;
  /** Cancels a timer of this clock, one-shot or interval; does nothing when it already fired or was cancelled. */
  clearTimeout(timer: ClockTimer): void;
  /** Calls `callback` every `ms` until cancelled. */
  setInterval(callback: () => void, ms: number): ClockTimer;
  /** Same as {@link clearTimeout}: cancels a timer of this clock, one-shot or interval. */
  clearInterval(timer: ClockTimer): void;
}
