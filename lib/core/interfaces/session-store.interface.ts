import type { ShardSession } from './shard-session.interface';

/**
 * Keeps shard sessions between runs so that a restarted bot resumes instead of identifying.
 * The cluster writes on READY, on a resumable close and periodically, never on every event.
 */
export interface ISessionStore {
  /** The saved session of a shard, or null. */
  get(shardId: number): Promise<ShardSession | null>;
  /** Saves (replaces) the session of a shard. */
  set(shardId: number, session: ShardSession): Promise<void>;
  /** Forgets the session of a shard. */
  delete(shardId: number): Promise<void>;
  /** Sends buffered writes to the backing store now, for stores that batch `set()`. Called when the cluster closes and after each periodic save. */
  flush?(): Promise<void>;
}
