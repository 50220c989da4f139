import type { Cluster } from '../core/cluster/cluster';
import type { ClusterOptions } from '../core/interfaces/cluster-options.interface';
import type { IGatewayScaleOut, RemoteShardHandler, RemoteShardMethod } from '../nest/interfaces/gateway-scale-out.interface';
import { RedisCommandBus } from './redis-command-bus';
import { redisKeyPrefix, type RedisClient } from './redis-options.interface';
import { defaultMemberId, shardLeaseOwner } from './shard-ownership';

/**
 * The {@link IGatewayScaleOut} of a worker app: it owns no shard, so every `ShardService` command goes over the
 * command bus to the gateway process that owns the shard and returns its result. It runs no commands for others.
 */
export class WorkerShardCommands implements IGatewayScaleOut {
  readonly distributed = true;
  readonly clusterDefaults: Partial<ClusterOptions> = {};
  readonly deduplicator = null;
  readonly delivery = null;
  private readonly bus: RedisCommandBus;
  private started: Promise<void> | null = null;

  /**
   * @param client - the worker's Redis client (left open)
   * @param keyPrefix - the bot's key prefix
   * @param timeoutMs - how long a command waits for its answer
   * @param log - receives the bus's lines
   */
  constructor(client: RedisClient, keyPrefix: string | undefined, timeoutMs: number | undefined, log: (message: string) => void) {
    const prefix = redisKeyPrefix({ keyPrefix });
    this.bus = new RedisCommandBus({
      client,
      keyPrefix,
      memberId: `worker-${defaultMemberId()}`,
      ownerOf: (shardId) => shardLeaseOwner(client, prefix, shardId),
      timeoutMs,
      log,
    });
  }

  attach(_cluster: Cluster): void {}

  /** Starts listening for the answers to this worker's commands. */
  start(): Promise<void> {
    this.started ??= this.bus.start();
    return this.started;
  }

  stop(_mode: 'resumable' | 'end-sessions'): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return this.bus.close();
  }

  async request<T = unknown>(shardId: number, method: RemoteShardMethod, args: unknown, timeoutMs?: number): Promise<T> {
    await this.start();
    return this.bus.request<T>(shardId, method, args, timeoutMs);
  }

  /** A worker runs no commands for other processes: requests addressed to it are answered with an error. */
  setHandler(_handler: RemoteShardHandler): void {}
}
