import type { ISessionStore } from '../interfaces/session-store.interface';
import type { ShardSession } from '../interfaces/shard-session.interface';

/**
 * Session store that lives as long as the process. Useful for restarting a cluster within one process;
 * use a persistent store to resume across restarts.
 */
export class InMemorySessionStore implements ISessionStore {
  private readonly sessions = new Map<number, ShardSession>();

  async get(shardId: number): Promise<ShardSession | null> {
    const session = this.sessions.get(shardId);
    return session ? { ...session } : null;
  }

  async set(shardId: number, session: ShardSession): Promise<void> {
    this.sessions.set(shardId, { ...session });
  }

  async delete(shardId: number): Promise<void> {
    this.sessions.delete(shardId);
  }
}
