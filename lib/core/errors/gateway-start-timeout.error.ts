import type { ShardInfo } from '../shard/shard';

/**
 * `Cluster.up()` (and so `app.init()` with `GatewayModule`) did not finish within `startTimeout`. The message names
 * each shard that was not ready, its state, its failed attempts and its last error.
 */
export class GatewayStartTimeoutError extends Error {
  override readonly name = 'GatewayStartTimeoutError';

  constructor(
    /** The `startTimeout` that passed, ms. */
    readonly timeoutMs: number,
    /** The shards that were not ready when it passed. */
    readonly shards: readonly Pick<ShardInfo, 'id' | 'state' | 'reconnectAttempts' | 'lastError'>[],
    /** True when no shard had been created yet (the wait was for `GET /gateway/bot` or the session store). */
    beforeShards = false,
  ) {
    const details = beforeShards
      ? 'still reading GET /gateway/bot or the saved sessions'
      : shards
          .map((s) => `shard ${s.id} is ${s.state} after ${s.reconnectAttempts} failed attempt(s) (last error: ${s.lastError ?? 'none'})`)
          .join('; ');
    super(`The gateway did not start within startTimeout (${timeoutMs} ms): ${details}`);
  }
}
