import { withDeadline } from './create-redis-client';
import { redisKey, type RedisClient } from './redis-options.interface';

/** One stream entry to claim: its id and the key that names its event across re-publications. */
export interface EntryClaim {
  entryId: string;
  /** `sessionId:sequence` (or the entry id for an event without a session). */
  idempotencyKey: string;
}

/** Value of a claim key once the event's handlers have settled. */
const DONE = 'done';

/**
 * Exactly-once claims for one worker group, in Redis. Workers of a group handle a shard's events in parallel, so the
 * highest-sequence claim of the gateway's exactly-once mode cannot be used: each event gets a key
 * `{<keyPrefix>}:workers:claim:<group>:<idempotency key>` for `ttlMs`, set in one `SET ... NX GET` per event (one
 * pipeline per read). It holds the id of the entry that carries the event, and `done` once its handlers have settled.
 *
 * An event is this worker's to handle when the key was free, or when it holds this very entry id (an entry whose
 * worker died, claimed again after `claimIdleMs`). It is skipped when the event is done, or when another entry with
 * the same event (published again by a gateway process that resumed the shard) holds it.
 */
export class RedisEntryDeduplicator {
  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly group: string,
    private readonly ttlMs: number,
    private readonly timeoutMs = 2_000,
  ) {}

  /** The Redis key of one event's claim. */
  key(idempotencyKey: string): string {
    return redisKey(this.prefix, 'workers', 'claim', this.group, idempotencyKey);
  }

  /** Claims a batch in one pipeline: true for the entries to handle. Rejects when Redis does not answer in time. */
  claim(entries: readonly EntryClaim[]): Promise<boolean[]> {
    return withDeadline(this.claimNow(entries), this.timeoutMs);
  }

  /** Marks events done (in `pipeline`, with the acknowledgements). */
  markDone(pipeline: ReturnType<RedisClient['pipeline']>, idempotencyKey: string): void {
    pipeline.set(this.key(idempotencyKey), DONE, 'PX', this.ttlMs);
  }

  private async claimNow(entries: readonly EntryClaim[]): Promise<boolean[]> {
    if (entries.length === 0) return [];
    const pipeline = this.client.pipeline();
    for (const entry of entries) pipeline.call('SET', this.key(entry.idempotencyKey), entry.entryId, 'PX', this.ttlMs, 'NX', 'GET');
    const results = (await pipeline.exec()) ?? [];
    return entries.map((entry, i) => {
      const [error, previous] = results[i] ?? [new Error('no reply'), null];
      if (error) throw error;
      return previous === null || previous === entry.entryId;
    });
  }
}
