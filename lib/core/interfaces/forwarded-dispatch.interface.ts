/**
 * One dispatch (op 0) event a shard forwarded without decoding it (`DispatchFilter.forward`): its name, sequence
 * and the payload's JSON text as received, `d` unparsed.
 */
export interface ForwardedDispatch {
  /** Id of the shard that received the event. */
  shardId: number;
  /** Event name, e.g. `MESSAGE_CREATE`. */
  t: string;
  /** Sequence number of the event. */
  s: number;
  /** Id of the session the event belongs to. */
  sessionId?: string;
  /**
   * The whole payload (`{"t":…,"s":…,"op":0,"d":…}`) as UTF-8 JSON text, never parsed by the shard: bytes, so that
   * passing it on (to Redis, to another thread) needs no decoding and encoding again. Owned by the receiver.
   */
  frame: Buffer;
}
