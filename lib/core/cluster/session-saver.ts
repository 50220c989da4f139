import type { Clock, ClockTimer } from '../interfaces/clock.interface';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';
import type { IHandlingTracker } from '../interfaces/handling-tracker.interface';
import type { ISessionStore } from '../interfaces/session-store.interface';
import type { ShardSession } from '../interfaces/shard-session.interface';
import { ShardState } from '../shard/shard-state';
import { SequenceCheckpointer } from './sequence-checkpointer';

/** What a {@link SessionSaver} reads of a shard. */
export interface SessionSource {
  /** The shard id. */
  readonly id: number;
  /** The shard's current session, or null. */
  readonly session: ShardSession | null;
  /** The shard's state: only ready shards are saved periodically. */
  readonly state: ShardState;
}

/** Options of {@link SessionSaver}. */
export interface SessionSaverOptions {
  /** Where sessions are kept. */
  store: ISessionStore;
  /** How often every ready shard's session is saved, ms. @defaultValue `60000` */
  sessionSaveIntervalMs?: number;
  /** How soon after an event its shard's handled sequence is saved, ms; null or left out: only periodically. */
  sequenceSaveIntervalMs?: number | null;
  /** The shards run now. */
  shards: () => Iterable<SessionSource>;
  /** The shard run now with this id, if any. */
  shard: (shardId: number) => SessionSource | undefined;
  /** Receives store failures (they are never thrown). */
  onError: (error: Error) => void;
  /** Times the periodic save. */
  clock: Clock;
}

/**
 * Writes a cluster's shard sessions to its session store: on READY and RESUMED, every `sessionSaveIntervalMs`
 * while started, and the handled sequence of busy shards soon after their events (`sequenceSaveIntervalMs`).
 * Every store call goes through it, so a failing store is reported on `onError` and never ends the caller.
 */
export class SessionSaver {
  private readonly store: ISessionStore;
  /** The periodic save, while started. */
  private saveTimer: ClockTimer | null = null;
  private readonly saveEveryMs: number;
  /** Saves the handled sequence of busy shards soon after their events (`sequenceSaveIntervalMs`). */
  private readonly checkpointer: SequenceCheckpointer | null = null;
  private handling: IHandlingTracker | null = null;
  /** `sessionId:sequence` last saved per shard by the checkpointer, so that unchanged sessions are not written. */
  private readonly checkpointed = new Map<number, string>();
  private checkpointFailing = false;

  constructor(private readonly options: SessionSaverOptions) {
    this.store = options.store;
    this.saveEveryMs = options.sessionSaveIntervalMs ?? 60_000;
    const sequenceSave = options.sequenceSaveIntervalMs;
    if (sequenceSave !== undefined && sequenceSave !== null) {
      this.checkpointer = new SequenceCheckpointer(sequenceSave, (ids) => this.checkpoint(ids));
    }
  }

  /** Sets what says which events are still being handled: saved sequences then stay below the oldest of them. */
  trackHandling(tracker: IHandlingTracker | null): void {
    this.handling = tracker;
  }

  /** Marks a shard whose handled sequence may have moved, to be saved within `sequenceSaveIntervalMs`. */
  touch(shardId: number): void {
    this.checkpointer?.touch(shardId);
  }

  /** Saves the shard's session when `event` opened or resumed it (READY, RESUMED). */
  sessionEvent(shard: SessionSource, event: GatewayDispatch): void {
    if (event.t === 'READY' || event.t === 'RESUMED') this.save(shard);
  }

  /** Starts the periodic save (and the sequence saves). */
  start(): void {
    this.checkpointer?.start();
    this.saveTimer = this.options.clock.setInterval(() => {
      for (const shard of this.options.shards()) if (shard.state === ShardState.Ready) this.save(shard);
      void this.flush();
    }, this.saveEveryMs);
    this.saveTimer.unref();
  }

  /** Stops the periodic save and the sequence saves. */
  stop(): void {
    this.checkpointer?.stop();
    if (this.saveTimer) this.options.clock.clearInterval(this.saveTimer);
    this.saveTimer = null;
  }

  /** The store's session of a shard; null when there is none or the store failed. */
  read(shardId: number): Promise<ShardSession | null> {
    return this.call(() => this.store.get(shardId));
  }

  /** Writes a shard's session. */
  async write(shardId: number, session: ShardSession): Promise<void> {
    await this.call(() => this.store.set(shardId, session));
  }

  /** Forgets a shard's session. */
  async remove(shardId: number): Promise<void> {
    await this.call(() => this.store.delete(shardId));
  }

  /** Sends the store's buffered writes, for stores that batch them. */
  async flush(): Promise<void> {
    const store = this.store;
    if (store.flush) await this.call(() => store.flush!());
  }

  private save(shard: SessionSource): void {
    const session = this.handledSession(shard);
    if (session) void this.write(shard.id, session);
  }

  /** The shard's session, its sequence lowered to just below the oldest event whose handling has not settled. */
  private handledSession(shard: SessionSource): ShardSession | null {
    const session = shard.session;
    if (!session) return null;
    const oldest = this.handling?.oldestUnsettled(shard.id) ?? null;
    if (oldest !== null && session.sequence !== null && oldest <= session.sequence) return { ...session, sequence: oldest - 1 };
    return session;
  }

  /** Saves the handled sequence of `ids` (those ready and changed since their last checkpoint) and flushes the store. */
  private async checkpoint(ids: number[]): Promise<void> {
    let changed = false;
    try {
      for (const id of ids) {
        const shard = this.options.shard(id);
        if (!shard || shard.state !== ShardState.Ready) continue;
        const session = this.handledSession(shard);
        if (!session) continue;
        const key = `${session.sessionId}:${session.sequence}`;
        if (this.checkpointed.get(id) === key) continue;
        this.checkpointed.set(id, key);
        changed = true;
        await this.store.set(id, session);
      }
      if (changed && this.store.flush) await this.store.flush();
      this.checkpointFailing = false;
    } catch (error) {
      // Reported once until a checkpoint succeeds again: with the store unreachable, every event would report it.
      for (const id of ids) this.checkpointed.delete(id);
      if (!this.checkpointFailing) this.options.onError(new Error(`Session store failed: ${(error as Error).message}`));
      this.checkpointFailing = true;
    }
  }

  private async call<T>(call: () => Promise<T>): Promise<T | null> {
    try {
      return await call();
    } catch (error) {
      this.options.onError(new Error(`Session store failed: ${(error as Error).message}`));
      return null;
    }
  }
}
