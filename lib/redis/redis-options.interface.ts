import type { Redis, RedisOptions } from 'ioredis';

/** Prefix of every key written when none is given. */
export const DEFAULT_REDIS_KEY_PREFIX = 'ndg';

/**
 * Where to find Redis, for every Redis-backed part (`nestjs-discord-gateway/redis`).
 *
 * - `{ url }`: a client is created (`lazyConnect`) and owned by the part: it is quit on `close()`.
 * - `{ client }`: an existing ioredis client is used and left open; its lifetime stays the caller's.
 *
 * Every key starts with `${keyPrefix}:`. The prefix names one bot: processes of one bot must share it, and
 * different bots sharing a Redis must each use their own (for example `ndg:<application id>`).
 */
export type RedisConnectionOptions = ({ url: string; redisOptions?: RedisOptions } | { client: Redis }) & {
  /** @defaultValue `'ndg'` */
  keyPrefix?: string;
};

/** The key prefix of `options`, with the default applied. */
export function redisKeyPrefix(options: { keyPrefix?: string }): string {
  return options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
}

/** `prefix:part:part…`, the layout of every key written. */
export function redisKey(prefix: string, ...parts: (string | number)[]): string {
  return [prefix, ...parts].join(':');
}
