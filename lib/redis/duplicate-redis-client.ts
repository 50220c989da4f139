import type { RedisClient } from './redis-options.interface';

/**
 * A new connection with the same options as `client` (for blocking reads or pub/sub, which need one of their own).
 * ioredis 6 types `duplicate()` of a single client and of a cluster so that their union is not callable; each is
 * this function.
 */
export function duplicateRedisClient(client: RedisClient): RedisClient {
  const duplicate: (this: RedisClient) => RedisClient = client.duplicate;
  return duplicate.call(client);
}
