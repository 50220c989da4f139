import type { Cluster } from '../cluster/cluster';
import type { IHandlingTracker } from './handling-tracker.interface';

/**
 * Where a cluster's dispatches go besides this process's own `@OnEvent` handlers. The default,
 * `InProcessDelivery`, sends them nowhere else; `RedisStreamPublisher` (`delivery: 'redis-streams'`) publishes the
 * ones worker groups want to Redis Streams, for `GatewayWorkerModule` apps.
 */
export interface IDispatchDelivery extends IHandlingTracker {
  /**
   * Starts delivering the cluster's dispatches, after the in-process handlers (attach it after the router). It
   * becomes the cluster's handling tracker, combining `handling` (the router) with its own: a saved sequence stays
   * below the oldest event not yet handled here or not yet delivered.
   */
  attach(cluster: Cluster, handling: IHandlingTracker | null): void;
  /** Delivers what it still holds (bounded in time) and stops. */
  detach(): Promise<void>;
}
