import type { ISessionStore } from '../core/interfaces/session-store.interface';
import type { ShardSession } from '../core/interfaces/shard-session.interface';
import { closeRedisClient, createRedisClient, withDeadline } from './create-redis-client';
import { redisKey, redisKeyPrefix, type RedisClient, type RedisConnectionOptions } from './redis-options.interface';

/** Options of {@link RedisSessionStore}. */
export type RedisSessionStoreOptions = RedisConnectionOptions & {
  /**
   * How long a saved session is kept after its last write, ms; `null` keeps it until deleted. Discord forgets a
   * session a few minutes after its connection is gone, so keeping it longer only costs a failed RESUME.
   * @defaultValue `600000` (10 minutes)
   */
  ttlMs?: number | null;
  /** Writes are buffered and sent in one pipeline this often, ms. @defaultValue `1000` */
  flushIntervalMs?: number;
  /**
   * Longest wait for one `flush()`, ms: past it `flush()` rejects and the writes are kept (and tried again), so
   * that a shutdown never waits for an unreachable Redis. @defaultValue `5000`
   */
  flushTimeoutMs?: number;
  /** Receives a line when a background flush fails (the writes are kept and tried again) or a fenced write is refused. */
  log?: (message: string) => void;
  /**
   * Asked at flush time for the lease under which a shard's session may be written: the write is then sent in a
   * script that writes only while the lease key still holds the token, checked by Redis atomically. `null` means
   * this process holds no lease on the shard any more: the buffered write is dropped. Without it, every write is
   * sent. {@link ShardOwnership.writeFence} gives the fence of the leases it holds.
   * @defaultValue no fence
   */
  fence?: (shardId: number) => SessionWriteFence | null;
};

/** The lease a session write is conditional on: the write happens only while `key` holds `token`. */
export interface SessionWriteFence {
  /** Redis key of the lease. */
  key: string;
  /** The token the lease key must hold. */
  token: string;
}

/**
 * KEYS[1] session key, KEYS[2] lease key; ARGV[1] lease token, ARGV[2] session JSON, ARGV[3] TTL ms ('' to keep).
 * Writes the session only while the lease holds the token. Returns 1 when written, 0 when refused.
 */
const FENCED_SET_SCRIPT = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
`;

/** What is stored per shard, as JSON. */
interface StoredSession {
  sessionId: string;
  sequence: number | null;
  resumeUrl: string;
  shardCount?: number;
}

/**
 * An {@link ISessionStore} in Redis, so that a restarted process (or another one taking a shard over) resumes.
 * Each shard's session is one JSON string under `{<keyPrefix>}:session:<shard id>`, expiring `ttlMs` after its
 * last write. `set()` only buffers: the writes of every shard go out together every `flushIntervalMs`, or on
 * `flush()`, which the cluster calls when it closes. `get()` sees buffered writes.
 */
export class RedisSessionStore implements ISessionStore {
  /** The prefix of every key this store writes. */
  readonly keyPrefix: string;
  private readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private readonly ttlMs: number | null;
  private readonly flushIntervalMs: number;
  private readonly log: (message: string) => void;
  private readonly fence: ((shardId: number) => SessionWriteFence | null) | undefined;
  private readonly flushTimeoutMs: number;
  private readonly pending = new Map<number, StoredSession>();
  /** The batch a flush under way sent, until Redis confirms it. */
  private inFlight = new Map<number, StoredSession>();
  private abandoned = false;
  /** Shards written or deleted since the flush under way took its batch. */
  private readonly touched = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private closed = false;
  private refused = 0;

  constructor(options: RedisSessionStoreOptions) {
    const ttlMs = options.ttlMs === undefined ? 600_000 : options.ttlMs;
    if (ttlMs !== null && (!Number.isInteger(ttlMs) || ttlMs < 1)) {
      throw new Error(`RedisSessionStore: ttlMs must be an integer >= 1 or null, got ${String(ttlMs)}`);
    }
    const flushIntervalMs = options.flushIntervalMs ?? 1_000;
    if (!Number.isInteger(flushIntervalMs) || flushIntervalMs < 1) {
      throw new Error(`RedisSessionStore: flushIntervalMs must be an integer >= 1, got ${String(flushIntervalMs)}`);
    }
    const flushTimeoutMs = options.flushTimeoutMs ?? 5_000;
    if (!Number.isInteger(flushTimeoutMs) || flushTimeoutMs < 1) {
      throw new Error(`RedisSessionStore: flushTimeoutMs must be an integer >= 1, got ${String(flushTimeoutMs)}`);
    }
    this.flushTimeoutMs = flushTimeoutMs;
    this.keyPrefix = redisKeyPrefix(options);
    this.ttlMs = ttlMs;
    this.flushIntervalMs = flushIntervalMs;
    this.log = options.log ?? (() => undefined);
    this.fence = options.fence;
    const { client, owned } = createRedisClient(options);
    this.client = client;
    this.ownsClient = owned;
  }

  /** The Redis key of a shard's session. */
  key(shardId: number): string {
    return redisKey(this.keyPrefix, 'session', shardId);
  }

  /** Writes not yet sent to Redis. */
  get pendingWrites(): number {
    return this.pending.size;
  }

  /** Writes a fence refused or dropped (the lease was no longer this process's) since the store was created. */
  get fencedWrites(): number {
    return this.refused;
  }

  async get(shardId: number): Promise<ShardSession | null> {
    const buffered = this.pending.get(shardId);
    if (buffered) return { ...buffered };
    const raw = await this.client.get(this.key(shardId));
    return raw === null ? null : parseSession(raw);
  }

  async set(shardId: number, session: ShardSession): Promise<void> {
    if (this.closed) throw new Error('The session store is closed');
    const stored: StoredSession = { sessionId: session.sessionId, sequence: session.sequence, resumeUrl: session.resumeUrl };
    if (session.shardCount !== undefined) stored.shardCount = session.shardCount;
    this.pending.set(shardId, stored);
    this.touched.add(shardId);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush().catch((error: Error) => this.log(`Session store: flush failed (${error.message}); will retry`));
      }, this.flushIntervalMs);
      this.timer.unref();
    }
  }

  async delete(shardId: number): Promise<void> {
    this.pending.delete(shardId);
    this.touched.add(shardId);
    // Sent after any flush already under way on this connection, so a buffered write cannot come back.
    await this.client.del(this.key(shardId));
  }

  /** Shards whose latest session Redis has not confirmed (buffered, or sent by a flush still unanswered), ascending. */
  unsavedShards(): number[] {
    return [...new Set([...this.pending.keys(), ...this.inFlight.keys()])].sort((a, b) => a - b);
  }

  /**
   * Stops sending: later flushes (and `close()`) resolve at once and leave the writes unsaved. For a shutdown
   * while Redis is unreachable; {@link unsavedShards} then says what was not saved.
   */
  abandon(): void {
    this.abandoned = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Undoes {@link abandon}: flushes send again. */
  resumeWriting(): void {
    this.abandoned = false;
  }

  /**
   * Sends every buffered write now, in one pipeline. Resolves when Redis has them; rejects after
   * `flushTimeoutMs` (the writes are kept and tried again).
   */
  flush(): Promise<void> {
    if (this.abandoned) return Promise.resolve();
    return withDeadline(this.flushNow(), this.flushTimeoutMs);
  }

  private async flushNow(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => undefined);
    if (this.pending.size === 0) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = new Map(this.pending);
    this.pending.clear();
    this.touched.clear();
    const pipeline = this.client.pipeline();
    const fenced: number[] = [];
    for (const [shardId, session] of batch) {
      const json = JSON.stringify(session);
      if (this.fence) {
        const fence = this.fence(shardId);
        if (!fence) {
          this.refuse(shardId, 'this process no longer holds its lease');
          batch.delete(shardId);
          continue;
        }
        fenced.push(shardId);
        pipeline.eval(FENCED_SET_SCRIPT, 2, this.key(shardId), fence.key, fence.token, json, this.ttlMs ?? '');
      } else {
        fenced.push(-1);
        if (this.ttlMs === null) pipeline.set(this.key(shardId), json);
        else pipeline.set(this.key(shardId), json, 'PX', this.ttlMs);
      }
    }
    if (fenced.length === 0) return;
    this.inFlight = batch;
    this.flushing = pipeline.exec().then((results) => {
      const failed = results?.find(([error]) => error)?.[0];
      if (failed) throw failed;
      results?.forEach(([, reply], i) => {
        if (fenced[i] >= 0 && reply === 0) this.refuse(fenced[i], 'its lease is held by another process or expired');
      });
    });
    try {
      await this.flushing;
    } catch (error) {
      // Keep what failed unless a newer write (or a delete) replaced it meanwhile, and try again later.
      for (const [shardId, session] of batch) if (!this.touched.has(shardId)) this.pending.set(shardId, session);
      if (!this.closed && !this.abandoned && !this.timer) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.flush().catch((e: Error) => this.log(`Session store: flush failed (${e.message}); will retry`));
        }, this.flushIntervalMs);
        this.timer.unref();
      }
      throw error;
    } finally {
      this.flushing = null;
      this.inFlight = new Map();
    }
  }

  private refuse(shardId: number, reason: string): void {
    this.refused++;
    this.log(`Session store: the session of shard ${shardId} was not written: ${reason}`);
  }

  /** Flushes, then quits the client when it was created from a `url`. Later `set()` calls reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.flush();
    } finally {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      if (this.ownsClient) await closeRedisClient(this.client);
    }
  }
}

function parseSession(raw: string): ShardSession | null {
  try {
    const value = JSON.parse(raw) as Partial<StoredSession>;
    if (typeof value.sessionId !== 'string' || typeof value.resumeUrl !== 'string') return null;
    const session: ShardSession = {
      sessionId: value.sessionId,
      sequence: typeof value.sequence === 'number' ? value.sequence : null,
      resumeUrl: value.resumeUrl,
    };
    if (typeof value.shardCount === 'number') session.shardCount = value.shardCount;
    return session;
  } catch {
    return null;
  }
}
