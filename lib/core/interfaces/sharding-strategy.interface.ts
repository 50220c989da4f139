import type { IGatewayShard } from './gateway-shard.interface';
import type { ShardOptions } from './shard-options.interface';

/**
 * Where a cluster runs its shards: the seam between the cluster, which decides which shards run and when, and what
 * runs each one. The default runs them in this thread (`InProcessShardingStrategy`); `strategy: { type: 'workers' }`
 * runs them in worker threads (`WorkerPool`). Shard ownership (`shards: { ownership: 'redis' }`) works with either:
 * it adds and removes shards through the cluster and fences their handshakes with `ShardOptions.handshakeGuard`,
 * which every strategy honours.
 */
export interface IShardingStrategy {
  /** Creates one shard, not yet connected. Every option is honoured, functions (identify queue, guard) included. */
  createShard(options: ShardOptions): IGatewayShard;
  /** Brings every shard's figures up to date, waiting at most `timeoutMs` (at once when they are local). */
  refresh(timeoutMs: number): Promise<void>;
  /** Releases what the strategy holds besides its shards (worker threads), after the shards are closed. */
  stop(): Promise<void>;
}
