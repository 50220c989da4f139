// Types only: nothing of ioredis is loaded unless `redis` is configured.
import type { ClusterOptions } from '../../core/interfaces/cluster-options.interface';

/**
 * Options of `GatewayModule`: every {@link ClusterOptions} field, plus how the module starts and stops.
 */
export interface GatewayModuleOptions extends ClusterOptions {
  /**
   * Name of this gateway, for apps that run several bots: each `forRoot` with its own name and token. Handlers pick
   * a gateway with `@OnEvent(event, { gateway: name })`, services are injected with `@InjectShardService(name)` /
   * `@InjectClusterService(name)`. Letters, digits, `_`, `.` and `-`. @defaultValue `'default'`
   */
  name?: string;
  /** Connect the shards when the application bootstraps. @defaultValue `true` */
  autoConnect?: boolean;
  /**
   * Make application bootstrap wait until every shard is ready (so a fatal error fails startup).
   * With `false`, shards connect in the background and failures are logged. @defaultValue `true`
   */
  awaitReady?: boolean;
  /**
   * What application shutdown does: `'resumable'` closes the shards with a non-1000 code and saves their
   * sessions in the session store, so the next start resumes; `'end-sessions'` closes with 1000 (bot offline).
   * @defaultValue `'resumable'`
   */
  shutdown?: 'resumable' | 'end-sessions';
  /**
   * Handler promises allowed to be pending per shard; at the limit the shard stops reading its socket (heartbeats
   * go on) until half have settled, so slow handlers cannot grow memory without bound. @defaultValue `1000`
   */
  maxPendingHandlersPerShard?: number;
  /**
   * Redis shared by the bot's processes: `{ url }` (one server), `{ nodes, clusterOptions? }` (a Redis Cluster),
   * `{ sentinels, name }` (a primary watched by Redis Sentinel, followed across failovers) — for these a connection
   * is made and closed with the app — or `{ client }` (an ioredis `Redis` or `Cluster` client, left open). With it,
   * the identify queue and the session store default to the Redis ones (`RedisIdentifyQueue`,
   * `RedisSessionStore`), and `shards: { total, ownership: 'redis' }` divides the shards among the processes. Needs
   * the optional dependency `ioredis`, loaded only when this is set.
   */
  redis?: GatewayRedisConnection;
  /**
   * Prefix of every Redis key and channel; one per bot. Keys are `{<keyPrefix>}:...`, so the prefix is their hash
   * tag (one Redis Cluster slot per bot); a prefix with a hash tag of its own (`'{ndg:my-bot}'`) is used as it is.
   * Needs `redis`. @defaultValue `'ndg'`
   */
  keyPrefix?: string;
  /**
   * How long a shard lease (and a process heartbeat) lasts without renewal, ms: a crashed process's shards are
   * taken over within this time. Needs `shards: { ownership: 'redis' }`. @defaultValue `10000`
   */
  leaseTtlMs?: number;
  /** How long a call for a shard owned by another process waits for its answer, ms. Needs ownership. @defaultValue `5000` */
  commandTimeoutMs?: number;
  /**
   * Exactly-once mode: each event is claimed in Redis before its handlers run (one pipelined call per event-loop
   * turn, per shard and session a script that keeps the highest sequence claimed, for `ttlMs`), and an event
   * claimed before (by a process killed after handling it) is not handled again. An event is "handled" once
   * claimed: a process that dies after the claim and before its handlers finish leaves that event unhandled
   * (at most once for those few); every other event is handled exactly once. Handlers wait one Redis round trip.
   * When Redis does not answer a claim, events are handled without it (at least once) and a WARN says so.
   * Needs `redis`. @defaultValue `false`
   */
  exactlyOnce?: boolean | { ttlMs?: number };
  /** This process's id among the bot's processes; unique per live process. Needs ownership. @defaultValue `<hostname>-<pid>-<random>` */
  memberId?: string;
  /**
   * Where dispatches go besides this process's `@OnEvent` handlers. `'redis-streams'` also publishes the ones that
   * live `GatewayWorkerModule` groups want to one Redis stream per shard (see `streams`). Needs `redis` and
   * `shards: { total, ownership: 'redis' }`. @defaultValue `'in-process'`
   */
  delivery?: 'in-process' | 'redis-streams';
  /** Tuning of `delivery: 'redis-streams'`. */
  streams?: GatewayStreamsOptions;
}

/** Options of `delivery: 'redis-streams'` on the gateway side. */
export interface GatewayStreamsOptions {
  /** Entries kept per shard stream, roughly (`MAXLEN ~`); a group that falls further behind loses the oldest (counted, logged). @defaultValue `100000` */
  maxLen?: number;
  /** Events held in memory while Redis is slow or unreachable; beyond it, events are dropped (counted, logged). @defaultValue `10000` */
  maxBuffered?: number;
  /**
   * Events waiting for Redis at which a shard stops reading its socket (backpressure) until half are published; a
   * failing Redis resumes reading (then `maxBuffered` bounds what waits). 0: never pause. @defaultValue half of `maxBuffered`
   */
  pauseAt?: number;
  /** How often the live worker groups and the events they want are read, ms. @defaultValue `1000` */
  groupRefreshMs?: number;
  /** How often the groups' lag and cap drops are read (metrics, WARN on new drops), ms. @defaultValue `5000` */
  statsIntervalMs?: number;
}

/**
 * How `GatewayModule` reaches Redis: a URL (with ioredis `RedisOptions`), Redis Cluster nodes (with ioredis
 * `ClusterOptions`), Redis Sentinel addresses and the monitored primary's name (with `RedisOptions`), or an
 * ioredis client the application owns. Typed loosely here so that the main entry does not need ioredis's types;
 * `nestjs-discord-gateway/redis` has the exact types (`RedisConnectionOptions`).
 */
export type GatewayRedisConnection =
  | { url: string; redisOptions?: Record<string, unknown> }
  | { nodes: (string | { host: string; port: number })[]; clusterOptions?: Record<string, unknown> }
  | { sentinels: { host: string; port: number }[]; name: string; redisOptions?: Record<string, unknown> }
  | { client: object };
