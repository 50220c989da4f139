import { join, resolve } from 'node:path';
import { cpus, loadavg } from 'node:os';
import Redis from 'ioredis';
import { startRedisServer } from '../test/helpers/redis-server';
import { transpileForBench } from './build';
import { runBenchMain, killChild, nodeScript, waitForExit, waitForLine } from './child-processes';
import { RESULT_PREFIX, type ClientConfig, type ClientResult } from './clients/harness';
import { READY_PREFIX, type LoadServerConfig, type LoadServerReady } from './load-server';

/**
 * The cost of saving handled sequences and of the exactly-once mode: events/s of the `ours` client (a Nest app,
 * one MESSAGE_CREATE handler) through 4 shards it owns through a real redis-server, with each setting, against
 * the same app without Redis in the same round. Each run is a fresh process with a fresh key prefix; settings run
 * in alternating order (reversed every other round). Prints medians, the median of the per-round ratios to the
 * reference, and the Redis commands per 1,000 events (`INFO stats`).
 *
 *   npx ts-node --transpile-only bench/redis-ownership.ts            # BENCH_ROUNDS (3), BENCH_EVENTS (100000)
 */

const ROOT = resolve(__dirname, '..');
const BUILD_DIR = join(ROOT, '.bench-results', 'build');
const SHARDS = 4;

interface Setting {
  label: string;
  redis?: Omit<NonNullable<ClientConfig['redis']>, 'url' | 'keyPrefix'>;
}

const SETTINGS: Setting[] = [
  { label: 'no Redis (reference)' },
  { label: 'Redis ownership, sequences saved every 1 s only (sequenceSaveIntervalMs: null; before)', redis: { sequenceSaveIntervalMs: null } },
  { label: 'Redis ownership, sequenceSaveIntervalMs: 5', redis: { sequenceSaveIntervalMs: 5 } },
  { label: 'Redis ownership, sequenceSaveIntervalMs: 0 (default: per event-loop turn)', redis: {} },
  { label: 'Redis ownership, exactlyOnce: true (and the default saves)', redis: { exactlyOnce: true } },
];

function intEnv(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${name} must be an integer >= 1, got ${value}`);
  return parsed;
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function commandsProcessed(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN);
}

async function main(): Promise<void> {
  const rounds = intEnv('BENCH_ROUNDS', 3);
  const events = intEnv('BENCH_EVENTS', 100_000);
  process.stdout.write(`Redis ownership cost: ${events} MESSAGE_CREATE over ${SHARDS} shards, ${rounds} rounds, ${cpus().length} cores, load ${loadavg()[0].toFixed(2)}\n`);
  transpileForBench(ROOT, BUILD_DIR);
  const redisServer = await startRedisServer();
  const redis = new Redis(redisServer.url);
  const serverConfig: LoadServerConfig = { scenario: 'messages', events, shards: SHARDS };
  const server = nodeScript(join(BUILD_DIR, 'bench/load-server.js'), { BENCH_SERVER: JSON.stringify(serverConfig) });
  try {
    const ready = JSON.parse((await waitForLine(server, READY_PREFIX, 10 * 60_000, 'load server')).line) as LoadServerReady;
    const results = new Map<string, { eventsPerSec: number[]; ratio: number[]; cpuUs: number[]; commandsPer1k: number[] }>();
    for (const s of SETTINGS) results.set(s.label, { eventsPerSec: [], ratio: [], cpuUs: [], commandsPer1k: [] });
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? SETTINGS : [...SETTINGS].reverse();
      const perRound = new Map<string, number>();
      for (const setting of order) {
        const config: ClientConfig = {
          client: 'ours',
          url: `ws://127.0.0.1:${ready.port}`,
          apiUrl: `http://127.0.0.1:${ready.port}/api`,
          token: 'bench-token',
          plan: ready.plan,
          mode: 'stream',
          idleMs: 0,
          handledEvent: 'MESSAGE_CREATE',
          timeoutMs: 5 * 60_000,
          redis: setting.redis ? { url: redisServer.url, keyPrefix: `bench:${process.pid}:${round}:${perRound.size}`, ...setting.redis } : undefined,
        };
        const before = await commandsProcessed(redis);
        const child = nodeScript(join(BUILD_DIR, 'bench/clients/ours.js'), { BENCH_CLIENT: JSON.stringify(config) });
        try {
          const result = JSON.parse((await waitForLine(child, RESULT_PREFIX, config.timeoutMs + 30_000, setting.label)).line) as ClientResult;
          await waitForExit(child, 10_000);
          const commands = (await commandsProcessed(redis)) - before;
          const entry = results.get(setting.label)!;
          entry.eventsPerSec.push(result.eventsPerSec);
          entry.cpuUs.push(result.cpuUsPerEvent);
          entry.commandsPer1k.push((commands * 1_000) / result.events);
          perRound.set(setting.label, result.eventsPerSec);
        } finally {
          killChild(child, 'SIGKILL');
        }
      }
      const reference = perRound.get(SETTINGS[0].label)!;
      for (const [label, eventsPerSec] of perRound) results.get(label)!.ratio.push(eventsPerSec / reference);
      process.stdout.write(`round ${round + 1}/${rounds} done\n`);
    }
    process.stdout.write('\n| setting | events/s | ratio to no Redis | CPU µs/event | Redis commands per 1,000 events |\n| --- | ---: | ---: | ---: | ---: |\n');
    for (const setting of SETTINGS) {
      const entry = results.get(setting.label)!;
      const row = [
        setting.label,
        Math.round(median(entry.eventsPerSec)!).toLocaleString('en-US'),
        median(entry.ratio)!.toFixed(2),
        median(entry.cpuUs)!.toFixed(1),
        setting.redis ? median(entry.commandsPer1k)!.toFixed(1) : '-',
      ];
      process.stdout.write(`| ${row.join(' | ')} |\n`);
    }
  } finally {
    killChild(server, 'SIGTERM');
    await waitForExit(server, 5_000);
    redis.disconnect();
    await redisServer.stop();
  }
}

runBenchMain(main);
