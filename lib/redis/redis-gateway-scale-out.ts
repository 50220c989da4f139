import type { Cluster } from '../core/cluster/cluster';
import type { ClusterOptions, IdentifyQueueFactoryOptions } from '../core/interfaces/cluster-options.interface';
import type { GatewayModuleOptions } from '../nest/interfaces/gateway-module-options.interface';
import type {
  IGatewayScaleOut,
  RemoteShardHandler,
  RemoteShardMethod,
} from '../nest/interfaces/gateway-scale-out.interface';
import type { ISessionStore } from '../core/interfaces/session-store.interface';
import type { IDispatchDeduplicator } from '../core/interfaces/dispatch-deduplicator.interface';
import { closeRedisClient, createRedisClient } from './create-redis-client';
import { RedisCommandBus } from './redis-command-bus';
import { RedisDispatchDeduplicator } from './redis-dispatch-deduplicator';
import { RedisIdentifyQueue } from './redis-identify-queue';
import { redisKeyPrefix, type RedisClient, type RedisConnectionOptions } from './redis-options.interface';
import { RedisSessionStore } from './redis-session-store';
import { RedisStreamPublisher } from './redis-stream-publisher';
import { defaultMemberId, LeaseFencedSessionStore, ShardOwnership, shardLeaseOwner } from './shard-ownership';

/** Longest wait for one session flush, ms: short, so that a shutdown with Redis unreachable stays bounded. */
const SESSION_FLUSH_TIMEOUT_MS = 500;

/** Sessions are saved (and flushed to Redis) this often by default when Redis keeps them, ms. */
export const REDIS_SESSION_SAVE_INTERVAL_MS = 1_000;

/**
 * The handled sequence of a busy shard is saved at the end of each event-loop turn by default when Redis keeps the
 * sessions (`sequenceSaveIntervalMs`), one pipelined write in flight at a time.
 */
export const REDIS_SEQUENCE_SAVE_INTERVAL_MS = 0;

/**
 * The Redis side of `GatewayModule` when `redis` is configured: one shared connection for the identify queue, the
 * session store, shard ownership and the command bus. Loaded by the module only then, so that `ioredis` stays
 * optional.
 */
export class RedisGatewayScaleOut implements IGatewayScaleOut {
  readonly distributed: boolean;
  readonly clusterDefaults: Partial<ClusterOptions>;
  readonly deduplicator: IDispatchDeduplicator | null = null;
  /** The stream publisher of `delivery: 'redis-streams'`; null otherwise. */
  readonly delivery: RedisStreamPublisher | null = null;
  /** This process's member id. */
  readonly memberId: string;
  private readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private readonly shared: RedisConnectionOptions;
  private readonly store: RedisSessionStore | null = null;
  private queue: RedisIdentifyQueue | null = null;
  private bus: RedisCommandBus | null = null;
  private current: ShardOwnership | null = null;
  private cluster: Cluster | null = null;
  private handler: RemoteShardHandler | null = null;
  private starting: Promise<void> | null = null;
  /** Shards whose lease could not be deleted at the last stop. */
  private unreleased: number[] = [];

  constructor(
    private readonly options: GatewayModuleOptions,
    private readonly log: (message: string) => void = () => undefined,
    private readonly warn: (message: string) => void = log,
  ) {
    const shards = options.shards;
    this.distributed = typeof shards === 'object' && shards !== null && 'ownership' in shards;
    this.memberId = options.memberId ?? defaultMemberId();
    const { client, owned } = createRedisClient(options.redis as RedisConnectionOptions);
    this.client = client;
    this.ownsClient = owned;
    if (owned) client.on('error', (error: Error) => log(`Redis: ${error.message}`));
    this.shared = { client, keyPrefix: options.keyPrefix };

    const defaults: Partial<ClusterOptions> = {};
    if (!options.identifyQueue && !options.identifyQueueFactory) {
      defaults.identifyQueueFactory = (limits: IdentifyQueueFactoryOptions) => {
        this.queue = new RedisIdentifyQueue({
          ...this.shared,
          maxConcurrency: limits.maxConcurrency,
          windowMs: limits.windowMs,
          sessionStartLimit: limits.sessionStartLimit,
          log: limits.log,
          clock: limits.clock,
        });
        return this.queue;
      };
    }
    let store: ISessionStore | undefined = options.sessionStore;
    if (!store) {
      // Sessions of owned shards are written only while the lease is still this process's, checked by Redis.
      const fence = this.distributed ? (shardId: number) => this.current?.writeFence(shardId) ?? null : undefined;
      this.store = new RedisSessionStore({ ...this.shared, log, fence, flushTimeoutMs: SESSION_FLUSH_TIMEOUT_MS });
      store = this.store;
    }
    defaults.sessionStore = this.distributed
      ? new LeaseFencedSessionStore(store, (shardId) => this.current?.holds(shardId) ?? false)
      : store;
    if (options.sessionSaveIntervalMs === undefined) defaults.sessionSaveIntervalMs = REDIS_SESSION_SAVE_INTERVAL_MS;
    if (options.sequenceSaveIntervalMs === undefined && this.store) defaults.sequenceSaveIntervalMs = REDIS_SEQUENCE_SAVE_INTERVAL_MS;
    if (options.exactlyOnce) {
      const ttlMs = options.exactlyOnce === true ? undefined : options.exactlyOnce.ttlMs;
      this.deduplicator = new RedisDispatchDeduplicator({ ...this.shared, ttlMs });
    }
    if (options.delivery === 'redis-streams') {
      this.delivery = new RedisStreamPublisher({ ...options.streams, client, keyPrefix: options.keyPrefix, log, warn });
    }
    this.clusterDefaults = defaults;
  }

  /** The shard ownership while this process is a member (null before `start()` and after `stop()`). */
  get ownership(): ShardOwnership | null {
    return this.current;
  }

  attach(cluster: Cluster): void {
    this.cluster = cluster;
  }

  start(): Promise<void> {
    if (!this.distributed) return Promise.resolve();
    this.starting ??= this.join().catch((error: unknown) => {
      this.starting = null;
      throw error;
    });
    return this.starting;
  }

  async stop(mode: 'resumable' | 'end-sessions'): Promise<void> {
    await this.starting?.catch(() => undefined);
    const ownership = this.current;
    this.starting = null;
    if (ownership) {
      await ownership.stop({ resumable: mode !== 'end-sessions' });
      this.unreleased = ownership.unreleased;
      if (this.current === ownership) this.current = null;
    }
    // Redis unreachable: what is left to save would wait for a reconnect; the shutdown must not.
    if (this.client.status !== 'ready') this.store?.abandon();
  }

  async close(): Promise<void> {
    await this.stop('resumable');
    await this.bus?.close();
    this.bus = null;
    await this.queue?.close();
    await this.store?.close().catch((error: Error) => this.log(`session store: ${error.message}`));
    const unsaved = this.store?.unsavedShards() ?? [];
    const lost: string[] = [];
    if (unsaved.length > 0) lost.push(`the sessions of shards ${unsaved.join(', ')} (their next owner resumes from an older sequence, or identifies)`);
    if (this.unreleased.length > 0) {
      lost.push(`the release of the leases of shards ${this.unreleased.join(', ')} (they expire within ${this.options.leaseTtlMs ?? 10_000} ms)`);
    }
    if (lost.length > 0) this.warn(`Redis did not answer during shutdown; not saved: ${lost.join('; ')}`);
    if (this.ownsClient) await closeRedisClient(this.client);
  }

  request<T = unknown>(shardId: number, method: RemoteShardMethod, args: unknown, timeoutMs?: number): Promise<T> {
    if (!this.bus) return Promise.reject(new Error('Commands for other processes need shards: { ownership: "redis" } and a started module'));
    return this.bus.request<T>(shardId, method, args, timeoutMs);
  }

  setHandler(handler: RemoteShardHandler): void {
    this.handler = handler;
  }

  private async join(): Promise<void> {
    const cluster = this.cluster;
    if (!cluster) throw new Error('RedisGatewayScaleOut: no cluster attached');
    if (!this.bus) {
      this.bus = new RedisCommandBus({
        ...this.shared,
        memberId: this.memberId,
        ownerOf: (shardId) => shardLeaseOwner(this.client, redisKeyPrefix(this.shared), shardId),
        timeoutMs: this.options.commandTimeoutMs,
        log: this.log,
      });
      this.bus.setHandler((method, shardId, args) => {
        if (!this.handler) return Promise.reject(new Error('this process runs no shard commands'));
        return this.handler(method as RemoteShardMethod, shardId, args);
      });
      await this.bus.start();
    }
    this.store?.resumeWriting();
    // The worker groups' wanted events are known before the first shard is claimed.
    await this.delivery?.refresh();
    this.current = this.ownershipFor(cluster);
    await this.current.start();
  }

  private ownershipFor(cluster: Cluster): ShardOwnership {
    return new ShardOwnership({
      ...this.shared,
      cluster,
      memberId: this.memberId,
      leaseTtlMs: this.options.leaseTtlMs,
      log: this.log,
    });
  }
}
