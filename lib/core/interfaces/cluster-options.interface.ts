import type { Clock } from './clock.interface';
import type { IGatewayInfoSource } from './gateway-info.interface';
import type { IIdentifyQueue } from './identify-queue.interface';
import type { ISessionStore } from './session-store.interface';
import type { ShardOptions } from './shard-options.interface';
import type { ShardSession } from './shard-session.interface';
import type { SessionStartBudget } from '../queue/in-memory-identify-queue';

/**
 * Which shards this process runs.
 * - `'auto'`: the count `GET /gateway/bot` recommends, all in this process.
 * - `{ total, ids }`: the listed shards of a bot with `total` shards.
 * - `{ total, from, to }`: shards `from` to `to` inclusive of a bot with `total` shards.
 * - `{ total, ownership: 'redis' }`: processes sharing Redis divide the `total` shards among themselves through
 *   leases, and move them as processes come and go. A bare `Cluster` then starts with no shard: a `ShardOwnership`
 *   (`nestjs-discord-gateway/redis`) adds and removes them; `GatewayModule` does that itself when `redis` is set.
 */
export type ShardScheme =
  | 'auto'
  | { total: number; ids: number[] }
  | { total: number; from: number; to: number }
  | { total: number; ownership: 'redis' };

/** What a cluster knows about identify limits when it builds its identify queue. */
export interface IdentifyQueueFactoryOptions {
  /** `max_concurrency` from `GET /gateway/bot` (1 when it was not fetched). */
  maxConcurrency: number;
  /** The cluster's `identifyWindowMs`. */
  windowMs?: number;
  /** `session_start_limit` from `GET /gateway/bot`, when it was fetched. */
  sessionStartLimit?: SessionStartBudget;
  /** Where the queue may write lines for the cluster's `debug$`. */
  log: (message: string) => void;
  /** The cluster's clock (its `clock` option, or the real clock), for the queue's windows. */
  clock: Clock;
}

/**
 * Runs the cluster's shards in `worker_threads`, `shardsPerWorker` to a thread: socket reads, decompression and
 * the dispatch filter then use other cores, and only the events handlers want cross to the main thread.
 */
export interface WorkerStrategy {
  type: 'workers';
  /** Shards per worker thread; shard `id` runs in worker `floor(id / shardsPerWorker)`. @defaultValue `1` */
  shardsPerWorker?: number;
  /** How often each worker is pinged, ms. @defaultValue `5000` */
  pingIntervalMs?: number;
  /** A worker that does not answer a ping within this time is terminated and replaced, ms. @defaultValue `10000` */
  pingTimeoutMs?: number;
  /** How often workers report their shards' sessions and figures (besides with each batch of events), ms. @defaultValue `1000` */
  sessionReportIntervalMs?: number;
  /**
   * Absolute path of the module each worker thread runs: one that loads something first (instrumentation, say)
   * and then requires the package's own entry (the path `shardWorkerEntry()` of
   * `nestjs-discord-gateway/core` returns). A `.ts` path runs under `ts-node`. @defaultValue the package's own entry
   */
  workerEntry?: string;
}

/** Where a cluster runs its shards: in this thread (the default) or in worker threads. */
export type ShardingStrategy = { type: 'in-process' } | WorkerStrategy;

/** Options shared by every shard of a cluster. */
export type ClusterShardOptions = Omit<ShardOptions, 'id' | 'total' | 'session' | 'identifyQueue' | 'gatewayUrl'>;

/**
 * Options of a {@link Cluster}: every shard option but the per-shard ones, plus how to shard.
 */
export interface ClusterOptions extends ClusterShardOptions {
  /** @defaultValue `'auto'` */
  shards?: ShardScheme;
  /**
   * Where the shards run. With `{ type: 'workers' }`, options that are functions or objects of a class
   * (`random`, a custom decompressor factory, `handshakeGuard`) stay in the main thread and do not apply to the
   * shards. @defaultValue `{ type: 'in-process' }`
   */
  strategy?: ShardingStrategy;
  /** Gateway URL override. @defaultValue the `url` from `GET /gateway/bot` */
  gatewayUrl?: string;
  /** Base URL of Discord's HTTP API (without version), for `GET /gateway/bot`. @defaultValue `'https://discord.com/api'` */
  apiUrl?: string;
  /** Source of `GET /gateway/bot`. @defaultValue a `RestGatewayInfoSource` on `apiUrl` */
  gatewayInfo?: IGatewayInfoSource;
  /** Identify queue shared by the cluster's shards. @defaultValue an `InMemoryIdentifyQueue` from `max_concurrency` and `session_start_limit` */
  identifyQueue?: IIdentifyQueue;
  /**
   * Builds the identify queue from `GET /gateway/bot`'s limits when `identifyQueue` is not given, e.g. a queue
   * shared by processes through Redis. @defaultValue an `InMemoryIdentifyQueue`
   */
  identifyQueueFactory?: (options: IdentifyQueueFactoryOptions) => IIdentifyQueue;
  /** Identify window of the default queue, ms. @defaultValue `5000` */
  identifyWindowMs?: number;
  /** Where sessions are kept between runs. @defaultValue an `InMemorySessionStore` */
  sessionStore?: ISessionStore;
  /**
   * Sessions to resume at the first start, by shard id: what `downResumable()` returned in an earlier run (a cold
   * resume). They are written to the session store when the cluster starts, so they win over what it held for
   * those shards; a session Discord no longer knows makes its shard identify.
   */
  sessions?: Record<number, ShardSession>;
  /** How often sessions (and their sequence) are saved while running, ms. @defaultValue `60000` */
  sessionSaveIntervalMs?: number;
  /**
   * How soon after an event its shard's handled sequence is saved, ms, so that a process resuming the shard after
   * a crash replays little that was already handled: `0` saves at the end of the event-loop turn, with one write
   * in flight at a time (what arrives meanwhile goes into the next write); a number waits that long and saves every
   * shard touched meanwhile in one write; `null` saves only every `sessionSaveIntervalMs`. The saved sequence stays
   * below the oldest event whose handlers have not settled.
   * @defaultValue `null`; `0` when `GatewayModule` has `redis` and keeps sessions in Redis
   */
  sequenceSaveIntervalMs?: number | null;
  /** Wait for the session-start budget to reset instead of refusing to start more shards than it allows. @defaultValue `false` */
  waitForSessionStartLimit?: boolean;
  /** Time after READY to wait for every listed guild's GUILD_CREATE before "guilds ready" fires anyway, ms. @defaultValue `15000` */
  guildReadyTimeout?: number;
  /**
   * Deadline for `up()` (and so for `app.init()` with `GatewayModule`), ms: when it passes before every shard is
   * ready, the shards are closed and `up()` rejects with a `GatewayStartTimeoutError` that names each shard not
   * ready and its last error (a refused URL, for instance). Without it, `up()` waits as long as the shards keep
   * retrying. @defaultValue none (no deadline)
   */
  startTimeout?: number;
  /** Minimum time between two full-list member requests for one guild, ms (Discord allows one per 30 s). @defaultValue `30000` */
  memberRequestCooldownMs?: number;
}
