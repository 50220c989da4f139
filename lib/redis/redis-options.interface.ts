import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis';

/** Prefix of every key written when none is given. */
export const DEFAULT_REDIS_KEY_PREFIX = 'ndg';

/** The clients the Redis parts work with: one server (or a sentinel-managed primary), or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** A Redis Cluster: some of its nodes (the others are discovered), and ioredis `ClusterOptions`. */
export interface RedisClusterConnection {
  /** Nodes to start from: `{ host, port }` or `'host:port'`. */
  nodes: ClusterNode[];
  /** Options of the ioredis `Cluster` client (its `redisOptions` apply to each node's connection). */
  clusterOptions?: ClusterOptions;
}

/** A primary that Redis Sentinel watches: the client asks the sentinels where it is, and again after a failover. */
export interface RedisSentinelConnection {
  /** Sentinels to ask: `{ host, port }`. */
  sentinels: { host: string; port: number }[];
  /** The name the sentinels monitor the primary under (`sentinel monitor <name> ...`). */
  name: string;
  /**
   * Further ioredis `RedisOptions` (for example `password`, `sentinelPassword`, `db`). `failoverDetector` is on
   * unless set to false here.
   */
  redisOptions?: RedisOptions;
}

/**
 * Where to find Redis, for every Redis-backed part (`nestjs-discord-gateway/redis`).
 *
 * - `{ url }`: a client for one server is created (`lazyConnect`) and owned by the part: it is quit on `close()`.
 * - `{ nodes, clusterOptions? }`: the same, with an ioredis `Cluster` client for a Redis Cluster.
 * - `{ sentinels, name, redisOptions? }`: the same, with a client that finds the primary through Redis Sentinel
 *   and follows it across failovers.
 * - `{ client }`: an existing ioredis client (`Redis` or `Cluster`) is used and left open; its lifetime stays the
 *   caller's.
 *
 * Every key is `{<keyPrefix>}:...`: the prefix is a hash tag, so that all keys of one bot live in one Redis Cluster
 * slot and every script touches keys of one slot only. The prefix names one bot: processes of one bot must share
 * it, and different bots sharing a Redis must each use their own (for example `ndg:<application id>`).
 */
export type RedisConnectionOptions = (
  | { url: string; redisOptions?: RedisOptions }
  | RedisClusterConnection
  | RedisSentinelConnection
  | { client: RedisClient }
) & {
  /** Must not contain `{` or `}`. @defaultValue `'ndg'` */
  keyPrefix?: string;
};

/**
 * The key prefix of `options`, with the default applied.
 * @throws when it contains `{` or `}` (it is used as a Redis Cluster hash tag).
 */
export function redisKeyPrefix(options: { keyPrefix?: string }): string {
  const prefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
  if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
    throw new Error(`keyPrefix must be a non-empty string without "{" or "}", got ${JSON.stringify(prefix)}`);
  }
  return prefix;
}

/** `{prefix}:part:part…`, the layout of every key written: the braces make the prefix the key's hash tag. */
export function redisKey(prefix: string, ...parts: (string | number)[]): string {
  return [`{${prefix}}`, ...parts].join(':');
}
