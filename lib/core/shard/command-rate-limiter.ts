import type { Clock } from '../interfaces/clock.interface';
import { realClock } from './real-clock';

/**
 * Sliding-window limit on the frames one connection sends. Heartbeats are never held back: they get a reserved
 * share of `ceil(windowMs / interval) + 1` frames (the scheduled beats of one window plus one the server may
 * request). Every other frame (IDENTIFY, RESUME, user commands) counts against the rest, so that in any window
 * the total stays within `limit`.
 */
export class CommandRateLimiter {
  private readonly sent: number[] = [];
  private reserved = 0;

  constructor(
    /** Frames allowed per window. */
    readonly limit: number,
    /** Window length, ms. */
    readonly windowMs: number,
    /** Where the time is read. @defaultValue the real clock */
    private readonly clock: Pick<Clock, 'now'> = realClock,
  ) {}

  /** Reserves room for heartbeats: `ceil(windowMs / heartbeatIntervalMs) + 1` frames. */
  reserveForHeartbeats(heartbeatIntervalMs: number): void {
    const reserved = Math.ceil(this.windowMs / heartbeatIntervalMs) + 1;
    this.reserved = Math.min(reserved, this.limit - 1);
  }

  /**
   * Why the heartbeats of `heartbeatIntervalMs` leave no room for commands under `configured` (the
   * `commandRateLimit` option), or null when they leave some: they need `ceil(windowMs / interval) + 1` frames per
   * window, and IDENTIFY or RESUME one more.
   */
  heartbeatConflict(heartbeatIntervalMs: number, configured: { limit: number; windowMs: number }): string | null {
    const needed = Math.ceil(this.windowMs / heartbeatIntervalMs) + 1;
    if (needed + 1 < this.limit) return null;
    return (
      `the gateway's heartbeat_interval of ${heartbeatIntervalMs} ms (a LocalGateway's heartbeatInterval option) ` +
      `needs ${needed} heartbeats per command window, but commandRateLimit allows ${configured.limit} frames per ` +
      `${configured.windowMs} ms, which leaves no room for commands. Give commandRateLimit a shorter windowMs ` +
      `(SHORT_SHARD_TIMINGS in nestjs-discord-gateway/testing uses 6000) or the gateway a longer heartbeatInterval`
    );
  }

  /** Frames reserved for heartbeats. */
  get reservedFrames(): number {
    return this.reserved;
  }

  /** Counts a frame that is sent regardless of the limit but outside the heartbeat share (IDENTIFY, RESUME). */
  record(): void {
    this.sent.push(this.clock.now());
  }

  /** Takes room for one user command; false when the window is full. */
  tryTake(): boolean {
    if (this.remaining() <= 0) return false;
    this.sent.push(this.clock.now());
    return true;
  }

  /** User commands that may go out now. */
  remaining(): number {
    this.prune();
    return Math.max(0, this.limit - this.reserved - this.sent.length);
  }

  /** Milliseconds until the oldest frame in the window leaves it (0 when the window is empty). */
  msUntilRefill(): number {
    this.prune();
    if (this.sent.length === 0) return 0;
    return Math.max(0, this.sent[0] + this.windowMs - this.clock.now());
  }

  private prune(): void {
    const cutoff = this.clock.now() - this.windowMs;
    let drop = 0;
    while (drop < this.sent.length && this.sent[drop] <= cutoff) drop++;
    if (drop > 0) this.sent.splice(0, drop);
  }
}
