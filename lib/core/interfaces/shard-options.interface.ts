import type { GatewayIdentifyProperties, GatewayPresenceUpdateData } from 'discord-api-types/v10';
import type { DispatchFilter } from '../shard/dispatch-filter';
import type { Clock } from './clock.interface';
import type { CompressionOptions } from './compression-options.interface';
import type { IDecompressorFactory } from './decompressor.interface';
import type { IIdentifyQueue } from './identify-queue.interface';
import type { ShardSession } from './shard-session.interface';

/**
 * Exponential reconnect backoff: attempt `n` (from 1) waits `min(maxMs, baseMs * 2^(n-1))`, scaled by a
 * random factor in [0.5, 1). Only the first reconnect after a healthy connection is immediate: the attempt counter
 * goes back to 0 once a connection has stayed ready (after READY or RESUMED) for `max(heartbeat interval,
 * resetAfterMs)`, never on READY or RESUMED alone, so a session that dies soon after it starts backs off.
 */
export interface BackoffOptions {
  /** @defaultValue `1000` */
  baseMs: number;
  /** @defaultValue `60000` */
  maxMs: number;
  /**
   * How long a connection must stay ready before the attempt counter resets, ms; the heartbeat interval is used
   * when it is longer. @defaultValue `30000`
   */
  resetAfterMs: number;
}

/**
 * Sliding-window cap on the connections one shard opens: at most `max` in any `windowMs`. When the window is full,
 * the next reconnect waits until the oldest connection leaves it, whatever the backoff says.
 */
export interface ReconnectLimitOptions {
  /** @defaultValue `10` */
  max: number;
  /** @defaultValue `60000` */
  windowMs: number;
}

/**
 * The `heartbeat_interval` a HELLO may carry, ms. A HELLO outside the range is a protocol error: the shard drops
 * the connection and reconnects with backoff. Discord sends about 41250.
 */
export interface HeartbeatIntervalRangeOptions {
  /**
   * Shortest accepted interval. The default lets fast local test setups run; a production bot may raise it
   * (e.g. to `1000`). @defaultValue `100`
   */
  minMs: number;
  /** Longest accepted interval, at most `2147483647` (Node's longest timer). @defaultValue `300000` */
  maxMs: number;
}

/** Range of the random wait before identifying again after a non-resumable INVALID_SESSION. */
export interface InvalidSessionDelayOptions {
  /** @defaultValue `1000` */
  minMs: number;
  /** @defaultValue `5000` */
  maxMs: number;
}

/** Outgoing frame limit of one connection. Heartbeats count and keep a reserved share. */
export interface CommandRateLimitOptions {
  /** @defaultValue `120` */
  limit: number;
  /** @defaultValue `60000` */
  windowMs: number;
}

/**
 * Options of one {@link Shard}.
 */
export interface ShardOptions {
  /** This shard's id, `0 <= id < total`. */
  id: number;
  /** Number of shards the bot runs in all. */
  total: number;
  /** Bot token. Never logged, never part of an error or of `inspect()` output. */
  token: string;
  /** Gateway intents bitfield. */
  intents: number;
  /** @defaultValue `'wss://gateway.discord.gg'` */
  gatewayUrl?: string;
  /**
   * Transport compression: `'zlib-stream'`, `'zstd-stream'`, `{ type, engine }` to choose what decompresses it
   * (see {@link CompressionOptions}), `'payload'` for payload compression instead (IDENTIFY `compress: true`,
   * large payloads compressed one by one), a custom decompressor factory, or `false` for none.
   * @defaultValue `'zlib-stream'` (engine `'node'`)
   */
  compression?: 'zlib-stream' | 'zstd-stream' | 'payload' | CompressionOptions | IDecompressorFactory | false;
  /** IDENTIFY `large_threshold`, 50 to 250. @defaultValue `50` */
  largeThreshold?: number;
  /** Presence sent with IDENTIFY. */
  presence?: GatewayPresenceUpdateData;
  /** IDENTIFY `properties`. @defaultValue `{ os: process.platform, browser: 'nestjs-discord-gateway', device: 'nestjs-discord-gateway' }` */
  identifyProperties?: GatewayIdentifyProperties;
  /** Queue that grants IDENTIFY. @defaultValue a new `InMemoryIdentifyQueue` with `maxConcurrency` 1 */
  identifyQueue?: IIdentifyQueue;
  /** A saved session: the first connection resumes it instead of identifying. */
  session?: ShardSession | null;
  /** WebSocket opening handshake timeout, ms. @defaultValue `30000` */
  handshakeTimeout?: number;
  /** Time allowed from opening a connection to HELLO, ms. @defaultValue `60000` */
  helloTimeout?: number;
  /** Time allowed from IDENTIFY or RESUME to READY or RESUMED, ms. @defaultValue `15000` */
  readyTimeout?: number;
  /** Time a close waits for the server's close frame, ms. @defaultValue `5000` */
  closeTimeout?: number;
  /** @defaultValue `{ baseMs: 1000, maxMs: 60000, resetAfterMs: 30000 }` */
  backoff?: Partial<BackoffOptions>;
  /** @defaultValue `{ max: 10, windowMs: 60000 }` */
  reconnectLimit?: Partial<ReconnectLimitOptions>;
  /** @defaultValue `{ minMs: 100, maxMs: 300000 }` */
  heartbeatIntervalRange?: Partial<HeartbeatIntervalRangeOptions>;
  /** @defaultValue `{ minMs: 1000, maxMs: 5000 }` */
  invalidSessionDelay?: Partial<InvalidSessionDelayOptions>;
  /** @defaultValue `{ limit: 120, windowMs: 60000 }` */
  commandRateLimit?: Partial<CommandRateLimitOptions>;
  /** Random source in [0, 1) for heartbeat and backoff jitter. @defaultValue `Math.random` */
  random?: () => number;
  /**
   * Largest message accepted, in bytes, compressed or inflated (WebSocket `maxPayload` and the decompression
   * limit). A larger one closes the connection with a non-1000 code and the shard resumes. @defaultValue `67108864` (64 MiB)
   */
  maxMessageBytes?: number;
  /** Allow a `ws://` gateway or `http://` API URL that is not on loopback. @defaultValue `false` */
  allowInsecureGateway?: boolean;
  /** Which dispatch events are decoded and emitted; the others only advance the sequence. @defaultValue every event */
  dispatchFilter?: DispatchFilter;
  /**
   * Asked before each IDENTIFY (before the identify queue is asked, so that the IDENTIFY goes out the moment it is granted) and right before each RESUME. When it resolves to
   * anything but `true`, or rejects, the handshake is not sent: the shard closes resumably, stops (its session is
   * kept, `connect()` rejects) and says so on `debug$`. Used to fence a shard whose ownership is held elsewhere,
   * e.g. by a lease in Redis. It should settle promptly: the connection waits for it.
   */
  handshakeGuard?: (kind: HandshakeKind) => Promise<boolean>;
  /**
   * Time and timers of the protocol's timing rules: heartbeats and their jitter, the zombie check, `helloTimeout`,
   * `readyTimeout`, the backoff and its reset, `reconnectLimit` and `commandRateLimit`. Socket deadlines
   * (`handshakeTimeout`, `closeTimeout`) stay on real time. A cluster hands its clock to its shards, identify queue,
   * guild-availability waits and session saves. Tests pass a `VirtualClock` from `nestjs-discord-gateway/testing`.
   * @defaultValue the real clock
   */
  clock?: Clock;
}

/** The two handshakes that start or continue a session on a new connection. */
export type HandshakeKind = 'identify' | 'resume';

/** Shard options with every default applied and the token taken out. */
export interface ResolvedShardOptions {
  id: number;
  total: number;
  intents: number;
  gatewayUrl: string;
  compression: IDecompressorFactory | false;
  largeThreshold: number;
  presence: GatewayPresenceUpdateData | undefined;
  identifyProperties: GatewayIdentifyProperties;
  identifyQueue: IIdentifyQueue;
  session: ShardSession | null;
  handshakeTimeout: number;
  helloTimeout: number;
  readyTimeout: number;
  closeTimeout: number;
  backoff: BackoffOptions;
  reconnectLimit: ReconnectLimitOptions;
  heartbeatIntervalRange: HeartbeatIntervalRangeOptions;
  invalidSessionDelay: InvalidSessionDelayOptions;
  commandRateLimit: CommandRateLimitOptions;
  random: () => number;
  maxMessageBytes: number;
  allowInsecureGateway: boolean;
  dispatchFilter: DispatchFilter | undefined;
  handshakeGuard: ((kind: HandshakeKind) => Promise<boolean>) | undefined;
  clock: Clock;
}
