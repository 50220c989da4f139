/**
 * One dispatch (op 0) event as a shard emits it.
 * @typeParam T - type of the event's data
 */
export interface GatewayDispatch<T = unknown> {
  /** Id of the shard that received the event. */
  shardId: number;
  /** Event name, e.g. `MESSAGE_CREATE`. Any string: new events pass through as they are. */
  t: string;
  /** Sequence number of the event. */
  s: number;
  /** Id of the session the event belongs to, when a shard emitted it. */
  sessionId?: string;
  /** Event data. */
  d: T;
}
