import type { IGatewayShard } from '../interfaces/gateway-shard.interface';
import type { IShardingStrategy } from '../interfaces/sharding-strategy.interface';
import type { ShardOptions } from '../interfaces/shard-options.interface';
import { Shard } from './shard';

/** The default {@link IShardingStrategy}: every shard is a {@link Shard} in this thread. */
export class InProcessShardingStrategy implements IShardingStrategy {
  createShard(options: ShardOptions): IGatewayShard {
    return new Shard(options);
  }

  /** In-process figures are always current. */
  refresh(): Promise<void> {
    return Promise.resolve();
  }

  /** Nothing to release. */
  stop(): Promise<void> {
    return Promise.resolve();
  }
}
