import type { RedisOptions } from 'ioredis';
import type { RedisClient, RedisClusterConnection, RedisConnectionOptions, RedisSentinelConnection } from './redis-options.interface';

/** A client and whether its creator owns it (and must therefore quit it). */
export interface RedisClientHandle {
  client: RedisClient;
  /** True when the client was created here (not given as `client`): whoever holds the handle quits it. */
  owned: boolean;
}

/**
 * Loads `ioredis`, an optional peer dependency needed only by `nestjs-discord-gateway/redis`.
 * @throws an error naming the package to install when it is missing.
 */
export function loadIoredis(): typeof import('ioredis') {
  try {
    // Loaded on demand so that nothing else in the library needs ioredis installed.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('ioredis') as typeof import('ioredis');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND' && String((error as Error).message).includes("'ioredis'")) {
      throw new Error(
        'nestjs-discord-gateway/redis needs the optional peer dependency "ioredis" (version 5): install it with `npm install ioredis`',
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * The client `options` describe: the given `client` (not owned), or a new one (owned, with `lazyConnect`: it
 * connects on its first command) for a `url`, cluster `nodes` or `sentinels`.
 */
export function createRedisClient(options: RedisConnectionOptions): RedisClientHandle {
  if ('client' in options && options.client) return { client: options.client, owned: false };
  if ('nodes' in options && options.nodes) {
    const { Cluster } = loadIoredis();
    const cluster: RedisClusterConnection = options;
    return { client: new Cluster(cluster.nodes, { ...cluster.clusterOptions, lazyConnect: true }), owned: true };
  }
  if ('sentinels' in options && options.sentinels) {
    const { Redis } = loadIoredis();
    const sentinel: RedisSentinelConnection = options;
    return {
      // failoverDetector: the sentinels' +switch-master moves the client to the new primary at once, instead of
      // when the old one is reconfigured (writes to it meanwhile would be lost).
      client: new Redis({
        failoverDetector: true,
        ...sentinel.redisOptions,
        sentinels: sentinel.sentinels,
        name: sentinel.name,
        lazyConnect: true,
      }),
      owned: true,
    };
  }
  const url = (options as { url?: unknown }).url;
  if (typeof url !== 'string' || url === '') {
    throw new Error(
      'Redis connection options need `url` (redis://host:port), `nodes` (a Redis Cluster), `sentinels` and `name` (Redis Sentinel) or `client` (an ioredis client)',
    );
  }
  const { Redis } = loadIoredis();
  const redisOptions = (options as { redisOptions?: RedisOptions }).redisOptions;
  return { client: new Redis(url, { ...redisOptions, lazyConnect: true }), owned: true };
}

/** Longest wait for Redis to answer QUIT before the connection is dropped, ms. */
const QUIT_TIMEOUT_MS = 1_000;

/**
 * Quits a client politely when it is connected (dropping it if QUIT is not answered within a second), and drops it
 * at once when it is not: a client waiting to reconnect to an unreachable Redis never delays a shutdown.
 */
export async function closeRedisClient(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await withDeadline(client.quit(), QUIT_TIMEOUT_MS);
  } catch {
    // dropped below
  }
  // Also after a QUIT: a sentinel client's failover detector keeps its own connections to the sentinels until then.
  client.disconnect();
}

/** `promise`, or a rejection naming the wait after `ms`: for Redis calls that would otherwise wait for a reconnect. */
export function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${Math.max(0, ms)} ms`)), Math.max(0, ms));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
