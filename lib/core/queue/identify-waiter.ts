/** One shard waiting in an identify queue for its turn to IDENTIFY. */
export interface IdentifyWaiter {
  shardId: number;
  /** Grants the turn. */
  resolve: () => void;
  /** Ends the wait with an error (the queue stopped, the wait was aborted). */
  reject: (error: Error) => void;
  /** Aborts the wait when it fires. */
  signal?: AbortSignal;
  /** Removes the abort listener once the wait is over. */
  onAbort?: () => void;
}
