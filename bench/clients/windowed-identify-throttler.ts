import type { IIdentifyThrottler } from '@discordjs/ws';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * An identify throttler for @discordjs/ws with a window of the benchmark's choosing: each rate-limit key
 * (`shardId % maxConcurrency`) identifies at most once per `windowMs` + `marginMs`, waiters of one key in turn.
 * It keeps the rule of @discordjs/ws's own `SimpleIdentifyThrottler` (whose window is fixed at 5 s) but not that
 * throttler's random extra wait of up to 1.5 s; `startup` gives it the margin the library's queue adds, so that
 * both libraries are compared under the same spacing. Without a margin, grants spaced by exactly one window reach
 * the server a little less than one window apart now and then (the time from grant to arrival varies).
 */
export class WindowedIdentifyThrottler implements IIdentifyThrottler {
  /** Per key: when the key may identify again, and the tail of its waiters. */
  private readonly keys = new Map<number, { freeAt: number; tail: Promise<void> }>();

  constructor(
    private readonly maxConcurrency: number,
    private readonly windowMs: number,
    private readonly marginMs: number,
  ) {}

  async waitForIdentify(shardId: number, signal: AbortSignal): Promise<void> {
    const key = shardId % this.maxConcurrency;
    const state = this.keys.get(key) ?? { freeAt: 0, tail: Promise.resolve() };
    this.keys.set(key, state);
    const turn = state.tail.then(async () => {
      const wait = state.freeAt - Date.now();
      if (wait > 0) await sleep(wait, undefined, { signal });
      state.freeAt = Date.now() + this.windowMs + this.marginMs;
    });
    // The next waiter of the key goes after this one, whether it identified or was aborted.
    state.tail = turn.catch(() => undefined);
    return turn;
  }
}
