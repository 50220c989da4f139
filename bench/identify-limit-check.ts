import { performance } from 'node:perf_hooks';

/** What the load server saw of one client's IDENTIFYs (`GET /bench/identifies`). */
export interface IdentifyStats {
  /** IDENTIFYs received. */
  identifies: number;
  /** IDENTIFYs of a rate-limit key less than one window after that key's previous IDENTIFY. */
  violations: number;
  /** Smallest gap between two IDENTIFYs of one key, ms (null when no key identified twice). */
  minKeyGapMs: number | null;
  /** From the first IDENTIFY to the last, ms (null without IDENTIFYs). */
  spanMs: number | null;
}

/**
 * Discord's identify rate limit as the load server checks it: shards with the same key `shard_id % max_concurrency`
 * may identify at most once per window. Each IDENTIFY is timed on arrival; one that comes less than `windowMs` after
 * the previous IDENTIFY of its key is a violation (it is still answered: the check only counts).
 */
export class IdentifyLimitCheck {
  private readonly lastAt = new Map<number, number>();
  private identifies = 0;
  private violations = 0;
  private minKeyGapMs = Infinity;
  private firstAt = 0;
  private latestAt = 0;

  constructor(
    private readonly maxConcurrency: number,
    private readonly windowMs: number,
  ) {}

  /** An IDENTIFY of `shardId` arrived now. */
  record(shardId: number): void {
    const now = performance.now();
    const key = shardId % this.maxConcurrency;
    const previous = this.lastAt.get(key);
    if (previous !== undefined) {
      const gap = now - previous;
      this.minKeyGapMs = Math.min(this.minKeyGapMs, gap);
      if (gap < this.windowMs) this.violations++;
    }
    this.lastAt.set(key, now);
    if (this.identifies === 0) this.firstAt = now;
    this.latestAt = now;
    this.identifies++;
  }

  /** The counts since the last call, then starts afresh (the next client is a new bot start). */
  take(): IdentifyStats {
    const stats: IdentifyStats = {
      identifies: this.identifies,
      violations: this.violations,
      minKeyGapMs: Number.isFinite(this.minKeyGapMs) ? round(this.minKeyGapMs) : null,
      spanMs: this.identifies > 0 ? round(this.latestAt - this.firstAt) : null,
    };
    this.lastAt.clear();
    this.identifies = this.violations = 0;
    this.minKeyGapMs = Infinity;
    return stats;
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
