import type { Clock, ClockTimer } from '../interfaces/clock.interface';
import type { IIdentifyQueue } from '../interfaces/identify-queue.interface';
import { realClock } from '../shard/real-clock';
import { abortError } from './abort-error';
import type { IdentifyWaiter as Waiter } from './identify-waiter';

/** The daily session-start budget, as `GET /gateway/bot` reports it in `session_start_limit`. */
export interface SessionStartBudget {
  /** Session starts left until the reset. */
  remaining: number;
  /** Session starts per period, restored at each reset. */
  total: number;
  /** Milliseconds from now until the budget resets. */
  resetAfter: number;
}

/** Options of {@link InMemoryIdentifyQueue}. */
export interface InMemoryIdentifyQueueOptions {
  /** `max_concurrency` from `GET /gateway/bot`. @defaultValue `1` */
  maxConcurrency?: number;
  /** Length of one identify window, ms. @defaultValue `5000` */
  windowMs?: number;
  /** Daily session-start budget. When it runs out, grants wait for the reset. @defaultValue unlimited */
  sessionStartLimit?: SessionStartBudget;
  /** Receives a line whenever grants must wait for the session-start budget to reset. */
  log?: (message: string) => void;
  /** Where windows and the budget's reset are timed. @defaultValue the real clock */
  clock?: Clock;
}

/**
 * Grants one IDENTIFY per rate-limit key (`shardId % maxConcurrency`) per window; keys are independent, so
 * a whole bucket of shards may identify at once. Waiters of one key are served lowest shard id first.
 * Never grants while the session-start budget is spent: it waits for the reset and says so through `log`. A grant
 * spends one session start; {@link refund} gives it back when the IDENTIFY was never written.
 */
export class InMemoryIdentifyQueue implements IIdentifyQueue {
  /** `max_concurrency` this queue enforces. */
  readonly maxConcurrency: number;
  /** Window plus a margin (5 %, from 50 to 250 ms) for the time an IDENTIFY takes to reach Discord. */
  private readonly spacingMs: number;
  private readonly log: (message: string) => void;
  private readonly waiting = new Map<number, Waiter[]>();
  private readonly nextFreeAt = new Map<number, number>();
  private budget: { remaining: number; total: number; resetAt: number } | null;
  private readonly clock: Clock;
  private timer: ClockTimer | null = null;

  constructor(options: InMemoryIdentifyQueueOptions = {}) {
    this.maxConcurrency = Math.max(1, options.maxConcurrency ?? 1);
    const windowMs = options.windowMs ?? 5_000;
    this.spacingMs = windowMs + Math.min(250, Math.max(50, Math.ceil(windowMs * 0.05)));
    this.log = options.log ?? (() => undefined);
    this.clock = options.clock ?? realClock;
    const limit = options.sessionStartLimit;
    this.budget = limit
      ? { remaining: limit.remaining, total: limit.total, resetAt: this.clock.now() + limit.resetAfter }
      : null;
  }

  /** Session starts left, or `Infinity` when no budget was given. */
  get remaining(): number {
    return this.budget ? this.budget.remaining : Infinity;
  }

  acquire(shardId: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError());
    const key = shardId % this.maxConcurrency;
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { shardId, resolve, reject, signal };
      const list = this.waiting.get(key) ?? [];
      if (signal) {
        waiter.onAbort = () => {
          const index = list.indexOf(waiter);
          if (index >= 0) list.splice(index, 1);
          reject(abortError());
          this.drain();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      let at = list.length;
      while (at > 0 && list[at - 1].shardId > shardId) at--;
      list.splice(at, 0, waiter);
      this.waiting.set(key, list);
      this.drain();
    });
  }

  /** Gives back the session start of a grant whose IDENTIFY was never sent (up to the budget's total). */
  refund(shardId: number): void {
    if (!this.budget || this.budget.remaining >= this.budget.total) return;
    this.budget.remaining++;
    this.log(`Shard ${shardId} did not use its IDENTIFY grant: ${this.budget.remaining} session start(s) left`);
    this.drain();
  }

  private drain(): void {
    if (this.timer) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
    const now = this.clock.now();
    let wakeAt = Infinity;
    for (const [key, list] of this.waiting) {
      if (list.length === 0) continue;
      if (this.budget && this.budget.remaining <= 0) {
        if (now < this.budget.resetAt) {
          wakeAt = Math.min(wakeAt, this.budget.resetAt);
          continue;
        }
        this.budget.remaining = this.budget.total;
        this.budget.resetAt = now + 86_400_000;
      }
      const freeAt = this.nextFreeAt.get(key) ?? 0;
      if (now < freeAt) {
        wakeAt = Math.min(wakeAt, freeAt);
        continue;
      }
      const waiter = list.shift()!;
      if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
      this.nextFreeAt.set(key, now + this.spacingMs);
      if (this.budget) this.budget.remaining--;
      waiter.resolve();
      if (list.length > 0) wakeAt = Math.min(wakeAt, now + this.spacingMs);
    }
    if (wakeAt === Infinity) return;
    if (this.budget && this.budget.remaining <= 0 && wakeAt === this.budget.resetAt) {
      this.log(`Session start limit reached: waiting ${wakeAt - now} ms for it to reset before identifying`);
    }
    this.timer = this.clock.setTimeout(() => this.drain(), Math.max(0, wakeAt - now));
  }
}
