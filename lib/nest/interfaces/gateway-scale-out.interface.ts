import type { Cluster } from '../../core/cluster/cluster';
import type { RemoteShardMethod } from '../../core/cluster/forwarded-shard-call';
import type { ClusterOptions } from '../../core/interfaces/cluster-options.interface';
import type { IDispatchDeduplicator } from '../../core/interfaces/dispatch-deduplicator.interface';
import type { IDispatchDelivery } from '../../core/interfaces/dispatch-delivery.interface';

/** Injection token of the module's {@link IGatewayScaleOut} (null when `redis` is not configured). */
export const GATEWAY_SCALE_OUT = Symbol('GATEWAY_SCALE_OUT');

export type { RemoteShardMethod };

/** Runs a forwarded call for a shard of this process. */
export type RemoteShardHandler = (method: RemoteShardMethod, shardId: number, args: unknown) => Promise<unknown>;

/**
 * What `GatewayModule` needs from the parts that spread one bot over many processes (the Redis ones, loaded only
 * when `redis` is configured): cluster defaults, shard ownership, and commands for shards owned elsewhere.
 */
export interface IGatewayScaleOut {
  /** True when the processes divide the shards among themselves (`shards: { total, ownership: 'redis' }`). */
  readonly distributed: boolean;
  /** Cluster options to use where the module options leave them out (identify queue, session store...). */
  readonly clusterDefaults: Partial<ClusterOptions>;
  /** Claims events across processes before they are handled (exactly-once mode); null when that mode is off. */
  readonly deduplicator?: IDispatchDeduplicator | null;
  /** Where dispatches go besides this process's handlers (`delivery: 'redis-streams'`); null for in-process only. */
  readonly delivery?: IDispatchDelivery | null;
  /** Binds the cluster built with those defaults. */
  attach(cluster: Cluster): void;
  /** Joins the processes and claims this one's share of the shards (after `cluster.up()`). No-op when not distributed. */
  start(): Promise<void>;
  /** Hands this process's shards over (resumable) or ends their sessions, and leaves. No-op when not distributed. */
  stop(mode: 'resumable' | 'end-sessions'): Promise<void>;
  /** Closes the Redis connections, after the cluster is down. */
  close(): Promise<void>;
  /** Runs a call on the process that owns `shardId`. */
  request<T = unknown>(shardId: number, method: RemoteShardMethod, args: unknown, timeoutMs?: number): Promise<T>;
  /** Sets what runs the calls other processes forward to this one. */
  setHandler(handler: RemoteShardHandler): void;
}
