import type { IDispatchDeduplicator } from '../core/interfaces/dispatch-deduplicator.interface';
import type { GatewayDispatch } from '../core/interfaces/gateway-dispatch.interface';
import { closeRedisClient, createRedisClient, withDeadline } from './create-redis-client';
import { RedisScript } from './redis-script';
import { redisKey, redisKeyPrefix, type RedisClient, type RedisConnectionOptions } from './redis-options.interface';

/** Options of {@link RedisDispatchDeduplicator}. */
export type RedisDispatchDeduplicatorOptions = RedisConnectionOptions & {
  /**
   * How long the highest claimed sequence of a session is kept after its last claim, ms: longer than a session can
   * be resumed (Discord forgets it minutes after its connection is gone). @defaultValue `600000` (10 minutes)
   */
  ttlMs?: number;
  /** Longest wait for one claim, ms: past it the claim rejects and the batch is handled without it. @defaultValue `2000` */
  claimTimeoutMs?: number;
};

/**
 * KEYS[1] highest claimed sequence of one shard's session; ARGV[1] the highest sequence of the batch, ARGV[2] TTL ms.
 * Raises the stored sequence to ARGV[1] and returns what it was (-1 when none): the batch's events above it are
 * the caller's.
 */
const CLAIM_SCRIPT = new RedisScript(`
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local top = tonumber(ARGV[1])
if top > current then redis.call('SET', KEYS[1], top, 'PX', ARGV[2]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return current
`);

/**
 * An {@link IDispatchDeduplicator} in Redis, for the exactly-once mode: per shard and session, a key
 * `${keyPrefix}:handled:<shard id>:<session id>` holds the highest sequence claimed. A batch is claimed in one
 * pipeline (one script call per shard and session in it): an event is this caller's when its sequence is above what
 * the key held. A process that resumes a shard after another was killed thus skips what that one had claimed.
 */
export class RedisDispatchDeduplicator implements IDispatchDeduplicator {
  /** The prefix of every key this deduplicator writes. */
  readonly keyPrefix: string;
  private readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private readonly ttlMs: number;
  private readonly claimTimeoutMs: number;

  constructor(options: RedisDispatchDeduplicatorOptions) {
    const ttlMs = options.ttlMs ?? 600_000;
    if (!Number.isInteger(ttlMs) || ttlMs < 1000) throw new Error(`RedisDispatchDeduplicator: ttlMs must be an integer >= 1000, got ${String(ttlMs)}`);
    const claimTimeoutMs = options.claimTimeoutMs ?? 2_000;
    if (!Number.isInteger(claimTimeoutMs) || claimTimeoutMs < 1) {
      throw new Error(`RedisDispatchDeduplicator: claimTimeoutMs must be an integer >= 1, got ${String(claimTimeoutMs)}`);
    }
    this.ttlMs = ttlMs;
    this.claimTimeoutMs = claimTimeoutMs;
    this.keyPrefix = redisKeyPrefix(options);
    const { client, owned } = createRedisClient(options);
    this.client = client;
    this.ownsClient = owned;
  }

  /** The Redis key of the highest claimed sequence of one shard's session. */
  key(shardId: number, sessionId: string): string {
    return redisKey(this.keyPrefix, 'handled', shardId, sessionId);
  }

  claim(events: readonly GatewayDispatch[]): Promise<boolean[]> {
    return withDeadline(this.claimNow(events), this.claimTimeoutMs);
  }

  /** Quits the client when it was created from a `url`. */
  async close(): Promise<void> {
    if (this.ownsClient) await closeRedisClient(this.client);
  }

  private async claimNow(events: readonly GatewayDispatch[]): Promise<boolean[]> {
    // One script call per shard and session in the batch, with the highest sequence of that group.
    const groups = new Map<string, { key: string; top: number }>();
    const groupOf: (string | null)[] = [];
    for (const event of events) {
      if (!event.sessionId) {
        groupOf.push(null);
        continue;
      }
      const key = this.key(event.shardId, event.sessionId);
      const group = groups.get(key);
      if (group) group.top = Math.max(group.top, event.s);
      else groups.set(key, { key, top: event.s });
      groupOf.push(key);
    }
    const list = [...groups.values()];
    const before = new Map<string, number>();
    let missing = list;
    for (let attempt = 0; attempt < 2 && missing.length > 0; attempt++) {
      const pipeline = this.client.pipeline();
      for (const { key, top } of missing) {
        if (attempt === 0) pipeline.evalsha(CLAIM_SCRIPT.sha, 1, key, top, this.ttlMs);
        else pipeline.eval(CLAIM_SCRIPT.source, 1, key, top, this.ttlMs);
      }
      const results = (await pipeline.exec()) ?? [];
      const retry: typeof list = [];
      missing.forEach((group, i) => {
        const [error, reply] = results[i] ?? [new Error('no reply'), null];
        if (!error) before.set(group.key, Number(reply));
        else if (attempt === 0 && String(error.message).startsWith('NOSCRIPT')) retry.push(group);
        else throw error;
      });
      missing = retry;
    }
    // Events without a session id cannot be told apart across sessions: they are handled.
    return events.map((event, i) => {
      const key = groupOf[i];
      return key === null ? true : event.s > before.get(key)!;
    });
  }
}
