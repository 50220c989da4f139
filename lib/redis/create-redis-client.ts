import type { Redis } from 'ioredis';
import type { RedisConnectionOptions } from './redis-options.interface';

/** A client and whether its creator owns it (and must therefore quit it). */
export interface RedisClientHandle {
  client: Redis;
  /** True when the client was created from a `url`: whoever holds the handle quits it. */
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
 * The client `options` describe: the given `client` (not owned), or a new one for `url` with `lazyConnect`
 * (owned; it connects on its first command).
 */
export function createRedisClient(options: RedisConnectionOptions): RedisClientHandle {
  if ('client' in options && options.client) return { client: options.client, owned: false };
  const url = (options as { url?: unknown }).url;
  if (typeof url !== 'string' || url === '') {
    throw new Error('Redis connection options need either `client` (an ioredis client) or `url` (redis://host:port)');
  }
  const { Redis } = loadIoredis();
  const redisOptions = (options as { redisOptions?: import('ioredis').RedisOptions }).redisOptions;
  return { client: new Redis(url, { ...redisOptions, lazyConnect: true }), owned: true };
}

/** Longest wait for Redis to answer QUIT before the connection is dropped, ms. */
const QUIT_TIMEOUT_MS = 1_000;

/**
 * Quits a client politely when it is connected (dropping it if QUIT is not answered within a second), and drops it
 * at once when it is not: a client waiting to reconnect to an unreachable Redis never delays a shutdown.
 */
export async function closeRedisClient(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await withDeadline(client.quit(), QUIT_TIMEOUT_MS);
  } catch {
    client.disconnect();
  }
}

/** `promise`, or a rejection naming the wait after `ms`: for Redis calls that would otherwise wait for a reconnect. */
export function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${Math.max(0, ms)} ms`)), Math.max(0, ms));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
