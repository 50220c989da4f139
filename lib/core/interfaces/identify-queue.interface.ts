/**
 * Decides when a shard may send IDENTIFY, so that session starts stay within Discord's limits.
 * Shared by every shard of a process; a Redis-backed implementation can share it across processes.
 */
export interface IIdentifyQueue {
  /**
   * Resolves when `shardId` may identify. Rejects with an `AbortError` when `signal` aborts first,
   * in which case the shard's place is given up.
   */
  acquire(shardId: number, signal?: AbortSignal): Promise<void>;
  /**
   * Called when a grant from {@link acquire} was not used: the connection closed before the IDENTIFY could be
   * written, so Discord counted no session start. A queue that keeps a session-start budget gives the start back;
   * one that keeps none may leave this out.
   */
  refund?(shardId: number): void;

  /**
   * Called by the shard right after it wrote the IDENTIFY that its last grant allowed (the shard writes it as soon
   * as `acquire` resolves). A queue shared across processes measures the window from here.
   */
  identified?(shardId: number): void;
}
