import { GatewayOptionsError } from '../core/errors/gateway-options.error';
import type { GatewayRedisConnection } from '../nest/interfaces/gateway-module-options.interface';
import { keyPrefixProblem } from './redis-options.interface';

/**
 * Options of `GatewayWorkerModule`: a worker app that runs `@OnEvent` handlers for events that gateway processes
 * (`delivery: 'redis-streams'`) publish to Redis Streams, with no connection to Discord of its own.
 */
export interface GatewayWorkerModuleOptions {
  /** The Redis of the gateway processes (same forms as `GatewayModule`'s `redis`). */
  redis: GatewayRedisConnection;
  /** The gateway processes' `keyPrefix`. @defaultValue `'ndg'` */
  keyPrefix?: string;
  /** The worker group: every group gets every event it wants once; the workers of a group share the events. */
  group: string;
  /** This worker's name in its group; a stable one resumes its own pending entries at once after a restart. @defaultValue `<hostname>-<pid>-<random>` */
  consumer?: string;
  /** Entries left pending this long by a worker (dead, or slower than this) are claimed by another of the group, ms. @defaultValue `30000` */
  claimIdleMs?: number;
  /** Entries read per call. @defaultValue `200` */
  batchSize?: number;
  /** Events whose handlers may run at once here; reading pauses at the limit. @defaultValue `1000` */
  maxInFlight?: number;
  /** How long the group stays wanted by the gateway processes after its last worker stopped, ms. @defaultValue `30000` */
  groupTtlMs?: number;
  /**
   * Exactly-once per group: each event is claimed in Redis before its handlers run (one pipeline per read), and an
   * event the group already handled (delivered again after a gateway process resumed its shard) is skipped; a
   * worker killed mid-handler leaves its claim to the worker that takes its entries over. Claims last `ttlMs`.
   * @defaultValue `false`
   */
  exactlyOnce?: boolean | { ttlMs?: number };
  /** Longest wait for running handlers at shutdown, ms. @defaultValue `10000` */
  stopTimeoutMs?: number;
  /** How long a `ShardService` command waits for the gateway process that owns the shard, ms. @defaultValue `5000` */
  commandTimeoutMs?: number;
  /** Which `GatewayModule` name's `@OnEvent` handlers run here. @defaultValue `'default'` */
  gateway?: string;
}

/** Checks the options; throws a `GatewayOptionsError` naming the first invalid one. */
export function validateWorkerOptions(options: GatewayWorkerModuleOptions): GatewayWorkerModuleOptions {
  if (typeof options !== 'object' || options === null) throw new GatewayOptionsError('options', 'must be an object');
  const redis = options.redis as unknown;
  if (typeof redis !== 'object' || redis === null || !['url', 'nodes', 'sentinels', 'client'].some((key) => key in redis)) {
    throw new GatewayOptionsError('redis', 'must be { url }, { nodes }, { sentinels, name } or { client }');
  }
  if (typeof options.group !== 'string' || !/^[\w.-]{1,100}$/.test(options.group)) {
    throw new GatewayOptionsError('group', 'must be 1 to 100 letters, digits, "_", "." or "-"');
  }
  if (options.consumer !== undefined && (typeof options.consumer !== 'string' || options.consumer === '')) {
    throw new GatewayOptionsError('consumer', 'must be a non-empty string');
  }
  if (options.keyPrefix !== undefined) {
    const problem = keyPrefixProblem(options.keyPrefix);
    if (problem) throw new GatewayOptionsError('keyPrefix', problem);
  }
  for (const key of ['claimIdleMs', 'batchSize', 'maxInFlight', 'groupTtlMs', 'stopTimeoutMs', 'commandTimeoutMs'] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new GatewayOptionsError(key, 'must be an integer >= 1');
  }
  const exactlyOnce = options.exactlyOnce as unknown;
  if (exactlyOnce !== undefined && typeof exactlyOnce !== 'boolean') {
    const ttlMs = (exactlyOnce as { ttlMs?: unknown } | null)?.ttlMs;
    if (typeof exactlyOnce !== 'object' || exactlyOnce === null) throw new GatewayOptionsError('exactlyOnce', 'must be true, false or { ttlMs }');
    if (ttlMs !== undefined && (!Number.isInteger(ttlMs) || (ttlMs as number) < 1000)) throw new GatewayOptionsError('exactlyOnce.ttlMs', 'must be an integer >= 1000');
  }
  return options;
}
