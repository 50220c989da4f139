/**
 * Thrown by `Cluster.up()` when starting its shards would need more IDENTIFYs than the daily session-start
 * budget has left, and the cluster was not told to wait for the reset.
 */
export class SessionStartLimitError extends Error {
  override readonly name = 'SessionStartLimitError';

  constructor(
    /** Shards that would need to identify. */
    readonly needed: number,
    /** `session_start_limit.remaining`. */
    readonly remaining: number,
    /** `session_start_limit.reset_after`, ms. */
    readonly resetAfter: number,
  ) {
    super(
      `Cannot start ${needed} shard(s): session_start_limit.remaining is ${remaining} ` +
        `(it resets in ${Math.ceil(resetAfter / 1000)} s). Set waitForSessionStartLimit to wait for the reset instead.`,
    );
  }
}
