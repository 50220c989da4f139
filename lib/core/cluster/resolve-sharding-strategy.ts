import type { ClusterOptions } from '../interfaces/cluster-options.interface';
import type { IShardingStrategy } from '../interfaces/sharding-strategy.interface';
import { InProcessShardingStrategy } from '../shard/in-process-sharding-strategy';
import { WorkerPool, type WorkerPoolOptions } from '../../workers/worker-pool';

/**
 * The {@link IShardingStrategy} the `strategy` option names: shards in this thread by default, in worker threads
 * with `{ type: 'workers' }` (`hooks` then carry the worker pool's reports to the cluster).
 */
export function resolveShardingStrategy(
  strategy: ClusterOptions['strategy'],
  token: string,
  hooks: Omit<WorkerPoolOptions, 'strategy'>,
): IShardingStrategy {
  if (strategy?.type === 'workers') return new WorkerPool(token, { ...hooks, strategy });
  return new InProcessShardingStrategy();
}
