import type { StreamGroupStats } from '../redis/stream-group-stats';

/**
 * Injection token of the {@link IStreamDeliveryStats} of a `GatewayWorkerModule` app (a gateway process's is its
 * stream publisher, found through the module's scale-out).
 */
export const STREAM_DELIVERY_STATS = Symbol('STREAM_DELIVERY_STATS');

/** What the Redis Streams delivery of this process reports, for metrics and health checks. */
export interface StreamDeliveryReport {
  /** `'gateway'`: a process that publishes; `'worker'`: a worker app that consumes for its group. */
  role: 'gateway' | 'worker';
  /**
   * This process's counters: for a gateway process `published`, `droppedByBuffer`, `buffered`; for a worker
   * `handled`, `acknowledged`, `malformed`, `duplicates`, `claimed`, `inFlight`.
   */
  counters: Record<string, number>;
  /** Per worker group and shard stream, read from Redis now: lag, pending entries, entries the cap dropped unread. */
  groups: StreamGroupStats[];
}

/** A source of {@link StreamDeliveryReport}s (`RedisStreamPublisher`, `GatewayWorker`). */
export interface IStreamDeliveryStats {
  /** Reads the groups' figures from Redis (one pipeline) and returns them with this process's counters. */
  deliveryReport(): Promise<StreamDeliveryReport>;
}
