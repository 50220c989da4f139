import { GatewayIntentBits } from 'discord-api-types/v10';
import { performance } from 'node:perf_hooks';
import type { ShardPlan } from '../corpus';

/**
 * What every benchmark client shares: its configuration (the `BENCH_CLIENT` environment variable, JSON), the
 * measurement of the streaming phase, and the one result line it prints.
 */

/** Configuration a client gets from the runner. */
export interface ClientConfig {
  /** Client name, e.g. `raw-zlib-sync`. */
  client: string;
  /** Gateway URL (`ws://127.0.0.1:<port>`). */
  url: string;
  /** API base for `GET /v10/gateway/bot` (`http://127.0.0.1:<port>/api`). */
  apiUrl: string;
  token: string;
  /** Per shard: event count and last sequence. Its length is the shard count. */
  plan: ShardPlan[];
  /**
   * `stream`: measure until every event arrived. `idle`: wait `idleMs` after READY, measure memory. `startup`: measure
   * from {@link Meter.begin} until every shard is READY.
   */
  mode: 'stream' | 'idle' | 'startup';
  idleMs: number;
  /** The event `ours` handles (`MESSAGE_CREATE` or `GUILD_CREATE`). */
  handledEvent: string;
  /** CPU time `ours` spends in its handler per handled event, µs (default 0). */
  handlerWorkUs?: number;
  /** Identify window the library clients use, and the djs throttler in `startup`, ms (default 100 / none). */
  identifyWindowMs?: number;
  /** The client gives up (exit code 2) after this long. */
  timeoutMs: number;
  /**
   * `ours` only: run with shards owned through this Redis (`shards: { total, ownership: 'redis' }`), with these
   * `sequenceSaveIntervalMs` (left out: the default) and `exactlyOnce`. See bench/redis-ownership.ts.
   */
  redis?: { url: string; keyPrefix: string; sequenceSaveIntervalMs?: number | null; exactlyOnce?: boolean };
}

/** The line a client prints when it is done. */
export interface ClientResult {
  client: string;
  shards: number;
  events: number;
  wallMs: number;
  eventsPerSec: number;
  cpuUsPerEvent: number;
  cpuMs: number;
  /** Peak resident set size of the process, MB. */
  peakRssMb: number;
  /** Resident set size when done, MB. */
  rssMb: number;
  /** `startup` mode: ms from {@link Meter.begin} until every shard was READY. */
  startupMs?: number;
}

/** Prefix of the result line on stdout. */
export const RESULT_PREFIX = 'BENCH_RESULT ';

/** Intents the library clients (`ours`, `ours-core`, `ours-workers`) identify with. */
export const LIBRARY_CLIENT_INTENTS =
  GatewayIntentBits.Guilds |
  GatewayIntentBits.GuildMessages |
  GatewayIntentBits.GuildMessageReactions |
  GatewayIntentBits.GuildMessageTyping |
  GatewayIntentBits.MessageContent;

/** Zlib's Z_SYNC_FLUSH marker, which ends every zlib-stream message. */
export const ZLIB_SUFFIX = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** Reads the configuration and arms the client's timeout. */
export function loadConfig(): ClientConfig {
  const config = JSON.parse(process.env.BENCH_CLIENT ?? 'null') as ClientConfig | null;
  if (!config?.url || !Array.isArray(config.plan)) throw new Error('BENCH_CLIENT must hold the client configuration');
  setTimeout(() => {
    process.stderr.write(`${config.client}: gave up after ${config.timeoutMs} ms\n`);
    process.exit(2);
  }, config.timeoutMs).unref();
  return config;
}

/** True when a WebSocket message ends a zlib-stream payload. */
export function endsWithSuffix(data: Buffer): boolean {
  const n = data.length;
  return n >= 4 && data[n - 4] === 0x00 && data[n - 3] === 0x00 && data[n - 2] === 0xff && data[n - 1] === 0xff;
}

/**
 * Tracks the shards of one run: the clock starts when the last shard is ready, stops when every shard has
 * received its last sequence (or, in idle mode, `idleMs` later), and then the result is printed and the process
 * exits. In startup mode the run ends as soon as the last shard is ready.
 */
export class Meter {
  private readonly ready = new Set<number>();
  private readonly finished = new Set<number>();
  private begunAt = performance.now();
  private startupMs: number | undefined;
  private startedAt = 0;
  private cpuAtStart: NodeJS.CpuUsage | null = null;
  private done = false;

  constructor(private readonly config: ClientConfig) {}

  get shards(): number {
    return this.config.plan.length;
  }

  /** Last sequence of a shard's stream. */
  lastSequence(shardId: number): number {
    return this.config.plan[shardId].lastSequence;
  }

  /** The client starts connecting now (start of the `startup` measurement; else the meter's creation). */
  begin(): void {
    this.begunAt = performance.now();
  }

  /** A shard got READY. */
  shardReady(shardId: number): void {
    if (this.ready.has(shardId)) return;
    this.ready.add(shardId);
    if (this.ready.size < this.shards) return;
    this.startedAt = performance.now();
    this.cpuAtStart = process.cpuUsage();
    if (this.config.mode === 'startup') {
      this.startupMs = round(this.startedAt - this.begunAt, 1);
      this.finish();
      return;
    }
    if (this.config.mode === 'idle') {
      setTimeout(() => this.finish(), this.config.idleMs);
      return;
    }
    for (let id = 0; id < this.shards; id++) if (this.config.plan[id].events === 0) this.finished.add(id);
    if (this.finished.size === this.shards) this.finish();
  }

  /** A shard received its last event. */
  shardDone(shardId: number): void {
    if (this.config.mode === 'idle' || this.finished.has(shardId)) return;
    this.finished.add(shardId);
    if (this.finished.size === this.shards && this.cpuAtStart) this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    const wallMs = performance.now() - this.startedAt;
    const cpu = process.cpuUsage(this.cpuAtStart ?? undefined);
    const cpuUs = cpu.user + cpu.system;
    const events = this.config.mode === 'stream' ? this.config.plan.reduce((sum, p) => sum + p.events, 0) : 0;
    const result: ClientResult = {
      client: this.config.client,
      shards: this.shards,
      events,
      wallMs: round(wallMs, 1),
      eventsPerSec: events === 0 ? 0 : Math.round(events / (wallMs / 1000)),
      cpuUsPerEvent: events === 0 ? 0 : round(cpuUs / events, 2),
      cpuMs: round(cpuUs / 1000, 1),
      peakRssMb: round(process.resourceUsage().maxRSS / 1024, 1),
      rssMb: round(process.memoryUsage.rss() / 1_048_576, 1),
      ...(this.startupMs === undefined ? {} : { startupMs: this.startupMs }),
    };
    process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
    process.exit(0);
  }
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** The IDENTIFY a raw client sends for a shard. */
export function identifyPayload(config: ClientConfig, shardId: number): string {
  return JSON.stringify({
    op: 2,
    d: {
      token: config.token,
      intents: 1 | 512 | 32768,
      properties: { os: process.platform, browser: 'bench', device: 'bench' },
      shard: [shardId, config.plan.length],
    },
  });
}
