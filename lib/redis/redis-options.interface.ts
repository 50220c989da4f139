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
 * Every key is `{<keyPrefix>}:...` (or `<keyPrefix>:...` when the prefix has a hash tag of its own, like
 * `'{ndg:my-bot}'`): all keys of one bot live in one Redis Cluster slot, and every script touches keys of one slot
 * only. The prefix names one bot: processes of one bot must share
 * it, and different bots sharing a Redis must each use their own (for example `ndg:<application id>`).
 */
export type RedisConnectionOptions = (
  | { url: string; redisOptions?: RedisOptions }
  | RedisClusterConnection
  | RedisSentinelConnection
  | { client: RedisClient }
) & {
  /** Wrapped in `{}` (a hash tag) unless it has a hash tag of its own. @defaultValue `'ndg'` */
  keyPrefix?: string;
};

/**
 * Why `prefix` cannot be a key prefix, or null when it can: a `{` in it must open a non-empty hash tag that the
 * prefix closes, so that every key of the bot gets the same tag.
 */
export function keyPrefixProblem(prefix: unknown): string | null {
  if (typeof prefix !== 'string' || prefix === '') return 'must be a non-empty string';
  const open = prefix.indexOf('{');
  if (open >= 0 && prefix.indexOf('}', open + 1) <= open + 1) return 'may contain "{" only to open a non-empty hash tag closed in it, like "{ndg:my-bot}"';
  return null;
}

/**
 * The key prefix of `options`, with the default applied.
 * @throws when it cannot be a key prefix (see {@link keyPrefixProblem}).
 */
export function redisKeyPrefix(options: { keyPrefix?: string }): string {
  const prefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
  const problem = keyPrefixProblem(prefix);
  if (problem) throw new Error(`keyPrefix ${problem}, got ${JSON.stringify(prefix)}`);
  return prefix;
}

/**
 * `{prefix}:part:part…`, the layout of every key written: the braces make the prefix the key's hash tag. A prefix
 * that has a hash tag of its own (`ndg:{my-bot}`) is used as it is.
 */
export function redisKey(prefix: string, ...parts: (string | number)[]): string {
  const open = prefix.indexOf('{');
  const tagged = open >= 0 && prefix.indexOf('}', open + 1) > open + 1;
  return [tagged ? prefix : `{${prefix}}`, ...parts].join(':');
}
