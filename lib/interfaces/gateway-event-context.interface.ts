/**
 * Second argument of every `@OnEvent` handler, and `host.getArgByIndex(1)` in guards, interceptors and filters.
 */
export interface GatewayEventContext {
  /** Event name, e.g. `MESSAGE_CREATE`. */
  event: string;
  /** Id of the shard that received the event. */
  shardId: number;
  /** Sequence number of the event within its session. */
  sequence: number;
}
