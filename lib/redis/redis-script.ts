import { createHash } from 'node:crypto';
import type { RedisClient } from './redis-options.interface';

/**
 * A Lua script run with `EVALSHA`, loaded with `EVAL` the first time a server does not know it. Works with any
 * client, without adding commands to it.
 */
export class RedisScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run<T = unknown>(client: RedisClient, keys: string[], args: (string | number | Buffer)[]): Promise<T> {
    try {
      return (await client.evalsha(this.sha, keys.length, ...keys, ...args)) as T;
    } catch (error) {
      if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
      return (await client.eval(this.source, keys.length, ...keys, ...args)) as T;
    }
  }
}
