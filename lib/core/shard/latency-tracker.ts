/** Heartbeat round-trip times of one shard. */
export interface LatencyStats {
  /** Last heartbeat round trip, ms; null before the first ACK. */
  last: number | null;
  /** Mean of the recent round trips, ms; null before the first ACK. */
  average: number | null;
  /** The most recent round trips, oldest first (at most five). */
  recent: number[];
}

/**
 * Keeps the last five heartbeat round trips of the current connection.
 */
export class LatencyTracker {
  private recent: number[] = [];

  constructor(private readonly size = 5) {}

  /** Records one round trip. */
  record(ms: number): void {
    this.recent.push(ms);
    if (this.recent.length > this.size) this.recent.shift();
  }

  /** Forgets every value (on each HELLO). */
  reset(): void {
    this.recent = [];
  }

  /** Current figures. */
  stats(): LatencyStats {
    const n = this.recent.length;
    if (n === 0) return { last: null, average: null, recent: [] };
    const sum = this.recent.reduce((a, b) => a + b, 0);
    return { last: this.recent[n - 1], average: sum / n, recent: [...this.recent] };
  }
}
