/** How far one worker group is behind on one shard's stream, as Redis reports it. */
export interface StreamGroupStats {
  group: string;
  shardId: number;
  /** Workers (consumers) the group has on this stream. */
  consumers: number;
  /** Entries delivered to a worker and not yet acknowledged. */
  pending: number;
  /** Entries in the stream the group has not read yet (null when Redis cannot tell, e.g. after an XDEL). */
  lag: number | null;
  /**
   * Entries the stream's cap (`MAXLEN ~`) trimmed before the group read them, since the stream was created: entries
   * added, minus those still in the stream, minus those the group read; never negative (0 when Redis cannot tell).
   */
  droppedByCap: number;
}

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
   * This process's counters: for a gateway process `published`, `droppedByBuffer`, `unencodable`, `buffered`; for a worker
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
