import { execFileSync, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import Redis from 'ioredis';
import { dispatchStreamKeys } from '../lib/redis';
import { createMessage, LocalGateway } from '../lib/nest/testing';
import { startRedisServer } from '../test/helpers/redis-server';
import { transpileForBench } from './build';
import { killChild, nodeScript, runBenchMain, waitForExit, waitForLine } from './child-processes';
import { RESULT_PREFIX, type ClientConfig, type ClientResult } from './clients/harness';
import { READY_PREFIX, type LoadServerConfig, type LoadServerReady } from './load-server';

/**
 * Redis Streams delivery (`delivery: 'redis-streams'` and `GatewayWorkerModule`), every process on this machine:
 *
 * 1. Throughput, same run and same corpus (the `messages` corpus on one shard, from the load server at full speed):
 *    events/s handled in-process by the `ours` client (no Redis), then events/s handled by one worker group of 1 and
 *    of 2 worker processes fed by one gateway process (from the group's first handled event to its last).
 * 2. Latency from the gateway process's receipt of an event to the start of its handler in a worker (one worker),
 *    p50 and p99, with the local gateway (in this process, messages encoded beforehand, no transport compression)
 *    sending MESSAGE_CREATE at 1,000 and at 10,000 events/s.
 *
 *   npx ts-node --transpile-only bench/redis-streams.ts     # BENCH_ROUNDS (1), BENCH_EVENTS (50000), BENCH_LATENCY_SECONDS (5)
 *   BENCH_DEBUG=1 ...                                        # also prints entries published and handled every 500 ms, and the gateway process's log
 *   BENCH_CPU_PROF=1 ...                                     # gateway and worker processes write .bench-results/profiles/streams-*.cpuprofile
 *   BENCH_PARTS=throughput ...                               # only one part (throughput, latency; both by default)
 */

const ROOT = resolve(__dirname, '..');
const BUILD_DIR = join(ROOT, '.bench-results', 'build');
/** One shard: a gateway process claims its shards one by one through Redis, and the measure must not include that. */
const SHARDS = 1;
const TIMEOUT_MS = 5 * 60_000;
/** Longest wait for the events of one latency run, ms. */
const LATENCY_TIMEOUT_MS = 120_000;
/** Node flags of the gateway and worker processes: `--cpu-prof` with BENCH_CPU_PROF (they then exit on SIGTERM, writing it). */
function profileArgs(name: string): string[] {
  if (!process.env.BENCH_CPU_PROF) return [];
  return ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, '.bench-results', 'profiles')}`, `--cpu-prof-name=streams-${name}-${Date.now()}.cpuprofile`];
}

/** Stops a gateway or worker process: SIGTERM (and its exit) when it writes a profile, SIGKILL otherwise. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (!process.env.BENCH_CPU_PROF) return killChild(child, 'SIGKILL');
  killChild(child, 'SIGTERM');
  await waitForExit(child, 10_000);
}

function intEnv(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${name} must be an integer >= 1, got ${value}`);
  return parsed;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

interface Progress {
  handled: number;
  firstAt: number;
  lastAt: number;
}

/** A worker process and its last progress line. */
function startWorker(
  redisUrl: string,
  keyPrefix: string,
  consumer: string,
  expected: number,
): { child: ChildProcess; progress: () => Progress | null; started: () => boolean; result: () => string | null } {
  const child = nodeScript(
    join(BUILD_DIR, 'bench/clients/stream-worker.js'),
    { BENCH_STREAM_WORKER: JSON.stringify({ redisUrl, keyPrefix, group: 'bench', consumer, expected }) },
    profileArgs(`worker-${consumer}`),
  );
  let last: Progress | null = null;
  let started = false;
  let result: string | null = null;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('STREAM_WORKER_PROGRESS ')) last = JSON.parse(line.slice('STREAM_WORKER_PROGRESS '.length)) as Progress;
    else if (line === 'STREAM_WORKER_STARTED') started = true;
    else if (line.startsWith('STREAM_WORKER_RESULT ')) result = line.slice('STREAM_WORKER_RESULT '.length);
  });
  return { child, progress: () => last, started: () => started, result: () => result };
}

function startGatewayProcess(apiUrl: string, token: string, redisUrl: string, keyPrefix: string, total: number, compression = true): ChildProcess {
  const child = nodeScript(
    join(BUILD_DIR, 'bench/clients/stream-gateway.js'),
    { BENCH_STREAM_GATEWAY: JSON.stringify({ apiUrl, token, total, redisUrl, keyPrefix, compression }) },
    profileArgs('gateway'),
  );
  if (process.env.BENCH_DEBUG) {
    for (const output of [child.stdout, child.stderr]) createInterface({ input: output! }).on('line', (line) => process.stdout.write(`gateway process: ${line}\n`));
  }
  return child;
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

async function main(): Promise<void> {
  const rounds = intEnv('BENCH_ROUNDS', 1);
  const events = intEnv('BENCH_EVENTS', 50_000);
  const latencySeconds = intEnv('BENCH_LATENCY_SECONDS', 5);
  const parts = (process.env.BENCH_PARTS ?? 'throughput,latency').split(',');
  const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim();
  process.stdout.write(`Redis Streams delivery: ${events} MESSAGE_CREATE over ${SHARDS} shards, ${rounds} round(s), ${cpus().length} cores\nuptime at start: ${uptime()}\n`);
  transpileForBench(ROOT, BUILD_DIR);
  const redisServer = await startRedisServer();
  const redis = new Redis(redisServer.url);
  const serverConfig: LoadServerConfig = { scenario: 'messages', events, shards: SHARDS };
  const server = nodeScript(join(BUILD_DIR, 'bench/load-server.js'), { BENCH_SERVER: JSON.stringify(serverConfig) });
  let runs = 0;
  /** A fresh key prefix whose shard count is already written (so that the workers join before the gateway process). */
  const freshPrefix = async (total: number) => {
    const prefix = `bench-streams:${process.pid}:${++runs}`;
    await redis.set(dispatchStreamKeys.shardCount(prefix), String(total));
    return prefix;
  };
  try {
    const ready = JSON.parse((await waitForLine(server, READY_PREFIX, 10 * 60_000, 'load server')).line) as LoadServerReady;
    const total = ready.plan.reduce((sum, shard) => sum + shard.events, 0);
    const apiUrl = `http://127.0.0.1:${ready.port}/api`;
    const throughput = { inProcess: [] as number[], one: [] as number[], two: [] as number[] };

    for (let round = 0; round < rounds && parts.includes('throughput'); round++) {
      // In-process reference: the same corpus handled by an @OnEvent handler in the gateway process itself.
      const config: ClientConfig = {
        client: 'ours',
        url: `ws://127.0.0.1:${ready.port}`,
        apiUrl,
        token: 'bench-token',
        plan: ready.plan,
        mode: 'stream',
        idleMs: 0,
        handledEvent: 'MESSAGE_CREATE',
        timeoutMs: TIMEOUT_MS,
      };
      const reference = nodeScript(join(BUILD_DIR, 'bench/clients/ours.js'), { BENCH_CLIENT: JSON.stringify(config) });
      try {
        const result = JSON.parse((await waitForLine(reference, RESULT_PREFIX, TIMEOUT_MS + 30_000, 'in-process')).line) as ClientResult;
        await waitForExit(reference, 10_000);
        throughput.inProcess.push(result.eventsPerSec);
      } finally {
        killChild(reference, 'SIGKILL');
      }
      for (const count of [1, 2] as const) {
        const keyPrefix = await freshPrefix(SHARDS);
        const workers = Array.from({ length: count }, (_, i) => startWorker(redisServer.url, keyPrefix, `w${i}`, 0));
        let gateway: ChildProcess | null = null;
        try {
          await until(() => workers.every((w) => w.started()), 120_000, 'the workers to start');
          gateway = startGatewayProcess(apiUrl, 'bench-token', redisServer.url, keyPrefix, SHARDS);
          const all = () => workers.map((w) => w.progress());
          const debug = process.env.BENCH_DEBUG
            ? setInterval(() => {
                void Promise.all(Array.from({ length: SHARDS }, (_, id) => redis.xlen(dispatchStreamKeys.stream(keyPrefix, id)))).then((lengths) =>
                  process.stdout.write(`published ${lengths.reduce((a, b) => a + b, 0)}, handled ${all().reduce((sum, p) => sum + (p?.handled ?? 0), 0)}\n`),
                );
              }, 500)
            : null;
          await until(() => all().reduce((sum, p) => sum + (p?.handled ?? 0), 0) >= total, TIMEOUT_MS, `${total} events handled by ${count} worker(s)`);
          if (debug) clearInterval(debug);
          const progress = all().filter((p): p is Progress => p !== null);
          const first = Math.min(...progress.map((p) => p.firstAt));
          const last = Math.max(...progress.map((p) => p.lastAt));
          (count === 1 ? throughput.one : throughput.two).push((total * 1_000) / (last - first));
        } finally {
          if (gateway) await stopChild(gateway);
          for (const worker of workers) await stopChild(worker.child);
        }
      }
      process.stdout.write(
        `round ${round + 1}/${rounds}: in-process ${Math.round(throughput.inProcess[round])}/s, 1 worker ${Math.round(throughput.one[round])}/s, 2 workers ${Math.round(throughput.two[round])}/s; ${uptime()}\n`,
      );
    }

    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    const reference = median(throughput.inProcess);
    if (parts.includes('throughput')) process.stdout.write('\n| delivery | events/s (median) | ratio to in-process |\n| --- | ---: | ---: |\n');
    if (parts.includes('throughput')) process.stdout.write(`| in-process (@OnEvent in the gateway process) | ${fmt(reference)} | 1.00 |\n`);
    if (parts.includes('throughput')) process.stdout.write(`| redis-streams, 1 worker | ${fmt(median(throughput.one))} | ${(median(throughput.one) / reference).toFixed(2)} |\n`);
    if (parts.includes('throughput')) process.stdout.write(`| redis-streams, 2 workers | ${fmt(median(throughput.two))} | ${(median(throughput.two) / reference).toFixed(2)} |\n`);
    // Latency at a fixed rate: the local gateway sends, one gateway process publishes, one worker handles.
    const latency: { rate: number; p50Ms: number; p99Ms: number; events: number; sentPerSec: number; note: string }[] = [];
    const rates = parts.includes('latency') ? [1_000, 10_000] : [];
    for (const [round, rate] of Array.from({ length: rounds }, (_, r) => rates.map((rate) => [r, rate] as const)).flat()) {
      const local = await LocalGateway.start({ shards: 1, heartbeatInterval: 41_250 });
      const expected = rate * latencySeconds;
      const keyPrefix = await freshPrefix(1);
      const worker = startWorker(redisServer.url, keyPrefix, 'w0', expected);
      let gateway: ChildProcess | null = null;
      let feeder: NodeJS.Timeout | null = null;
      try {
        await until(() => worker.started(), 120_000, 'the worker to start');
        // Without transport compression: the local gateway deflates each message on its own, which would make this
        // process, not the delivery, the limit at 10,000 events/s.
        gateway = startGatewayProcess(local.apiUrl, local.token, redisServer.url, keyPrefix, 1, false);
        let gatewayWarnings = '';
        gateway.stderr?.on('data', (chunk: Buffer) => (gatewayWarnings = (gatewayWarnings + chunk.toString()).slice(-2_000)));
        gateway.stdout?.on('data', (chunk: Buffer) => (gatewayWarnings = (gatewayWarnings + chunk.toString()).slice(-2_000)));
        await until(() => local.connectionOf(0)?.handshakeDone === true, 60_000, 'the gateway process to connect');
        // The messages are encoded before the clock starts; each tick sends every message due by then.
        const texts = Array.from({ length: expected }, (_, i) => JSON.stringify(createMessage(i + 1)));
        let sent = 0;
        const startedAt = performance.now();
        feeder = setInterval(() => {
          const due = Math.min(expected, Math.floor(((performance.now() - startedAt) * rate) / 1_000));
          while (sent < due) local.dispatchJson(0, 'MESSAGE_CREATE', texts[sent++]);
        }, 1);
        try {
          await until(() => worker.result() !== null, LATENCY_TIMEOUT_MS, `latency at ${rate}/s`);
          const result = JSON.parse(worker.result()!) as { p50Ms: number; p99Ms: number; events: number };
          const sentPerSec = (sent * 1_000) / (performance.now() - startedAt);
          latency.push({ rate, ...result, sentPerSec, note: `round ${round + 1}` });
          process.stdout.write(`latency round ${round + 1}, ${rate}/s: sent at ${fmt(sentPerSec)}/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms; ${uptime()}\n`);
        } catch {
          const handled = worker.progress()?.handled ?? 0;
          const dropped = /dropped[^\n]*/.exec(gatewayWarnings)?.[0] ?? 'no drop reported';
          latency.push({ rate, p50Ms: NaN, p99Ms: NaN, events: handled, sentPerSec: NaN, note: `incomplete: ${handled} of ${expected} handled; gateway process: ${dropped}` });
        }
      } finally {
        if (feeder) clearInterval(feeder);
        if (gateway) await stopChild(gateway);
        await stopChild(worker.child);
        await local.close();
      }
    }

    if (latency.length > 0) {
      process.stdout.write('\n| rate | sent (median) | p50 receipt -> handler start (median) | p99 (median) | rounds |\n| ---: | ---: | ---: | ---: | --- |\n');
    }
    for (const rate of rates) {
      const rows = latency.filter((row) => row.rate === rate);
      const complete = rows.filter((row) => Number.isFinite(row.p99Ms));
      const of = (pick: (row: (typeof rows)[number]) => number) => (complete.length > 0 ? median(complete.map(pick)) : NaN);
      const notes = rows.filter((row) => !Number.isFinite(row.p99Ms)).map((row) => row.note);
      process.stdout.write(
        `| ${fmt(rate)}/s | ${fmt(of((row) => row.sentPerSec))}/s | ${of((row) => row.p50Ms).toFixed(2)} ms | ${of((row) => row.p99Ms).toFixed(2)} ms | ${complete.length} of ${rows.length} complete${notes.length > 0 ? `; ${notes.join('; ')}` : ''} |\n`,
      );
    }
    process.stdout.write(`\nuptime at end: ${uptime()} (load ${loadavg().map((l) => l.toFixed(2)).join(', ')})\n`);
  } finally {
    killChild(server, 'SIGTERM');
    await waitForExit(server, 5_000);
    redis.disconnect();
    await redisServer.stop();
  }
}

runBenchMain(main);
