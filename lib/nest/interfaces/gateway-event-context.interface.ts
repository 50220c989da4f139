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
  /**
   * Id of the session the event belongs to (null for an event no shard emitted). With `sequence` it identifies the
   * event: a handler can deduplicate on `(sessionId, sequence)` what a RESUME after a crash delivers again.
   */
  sessionId: string | null;
  /** In a `GatewayWorkerModule` app: the id of the stream entry the event came in (an entry holds the events of one publish). */
  entryId?: string;
  /**
   * In a `GatewayWorkerModule` app: `sessionId:sequence`, the same for every delivery of one event
   * (`<entry id>:<index in the entry>` for an event without a session), to deduplicate on.
   */
  idempotencyKey?: string;
  /** In a `GatewayWorkerModule` app: when the gateway process received the event, epoch ms (sub-millisecond). */
  receivedAt?: number;
}
