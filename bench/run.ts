import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { transpileForBench } from './build';
import { runBenchMain, killChild, nodeScript as runScript, waitForExit, waitForLine } from './child-processes';
import { DEFAULT_EVENTS, type ScenarioName } from './corpus';
import { RESULT_PREFIX, type ClientConfig, type ClientResult } from './clients/harness';
import type { IdentifyStats } from './identify-limit-check';
import { MAX_CONCURRENCY, READY_PREFIX, type LoadServerConfig, type LoadServerReady } from './load-server';
import { findZstdNode, type ZstdNode } from './zstd-node';

/**
 * Runs the benchmark: for each scenario, starts a load server in its own process, then runs every client of the
 * scenario in its own process, BENCH_ROUNDS times, in alternating order, and prints the medians.
 * See bench/README.md.
 */

const ROOT = resolve(__dirname, '..');
const RESULTS_DIR = join(ROOT, '.bench-results');
/** Where lib/ and bench/ are transpiled to, so that children run as plain `node` (see build.ts). */
const BUILD_DIR = join(RESULTS_DIR, 'build');
const TOKEN = 'bench-token';

type ClientName =
  | 'frames-only'
  | 'raw-zlib-sync'
  | 'raw-node-zlib'
  | 'raw-node-sync'
  | 'raw-fflate'
  | 'raw-zstd-node'
  | 'raw-filtered'
  | 'djs-zlib-sync'
  | 'djs-node-zlib'
  | 'ours'
  | 'ours-core'
  | 'ours-core-node-stream'
  | 'ours-core-zlib-sync'
  | 'ours-core-fflate'
  | 'ours-core-zstd-node'
  | 'ours-core-zstd-fzstd'
  | 'ours-workers';
/**
 * The raw floors; ratios are taken against the fastest of them in each round. `raw-filtered` is not one: it
 * skips work a floor does, and is measured against them.
 */
const RAW_FLOORS: ClientName[] = ['raw-zlib-sync', 'raw-node-zlib', 'raw-node-sync', 'raw-fflate', 'raw-zstd-node'];
const DJS: ClientName[] = ['djs-zlib-sync', 'djs-node-zlib'];
const CLIENT_FILES: Record<ClientName, string> = {
  'frames-only': 'bench/clients/raw.js',
  'raw-zlib-sync': 'bench/clients/raw.js',
  'raw-node-zlib': 'bench/clients/raw.js',
  'raw-node-sync': 'bench/clients/raw.js',
  'raw-fflate': 'bench/clients/raw.js',
  'raw-zstd-node': 'bench/clients/raw.js',
  'raw-filtered': 'bench/clients/raw.js',
  'djs-zlib-sync': 'bench/clients/djs.js',
  'djs-node-zlib': 'bench/clients/djs.js',
  ours: 'bench/clients/ours.js',
  'ours-core': 'bench/clients/ours-core.js',
  'ours-core-node-stream': 'bench/clients/ours-core.js',
  'ours-core-zlib-sync': 'bench/clients/ours-core.js',
  'ours-core-fflate': 'bench/clients/ours-core.js',
  'ours-core-zstd-node': 'bench/clients/ours-core.js',
  'ours-core-zstd-fzstd': 'bench/clients/ours-core.js',
  'ours-workers': 'bench/clients/ours.js',
};

const SCENARIO_IDS = ['messages', 'mixed', 'guilds', 'shards', 'idle', 'workers', 'startup', 'engines', 'zstd'];

/** The transport compression a client asks for. */
function compressionOf(client: ClientName): 'zlib-stream' | 'zstd-stream' {
  return client.includes('zstd') ? 'zstd-stream' : 'zlib-stream';
}

/**
 * One server configuration of a scenario and the clients run against it. With `server.identifyWindowMs`, the
 * server checks the identify limit and the clients get the same window.
 */
interface Part {
  label: string;
  server: LoadServerConfig;
  clients: ClientName[];
  mode: ClientConfig['mode'];
  handledEvent: string;
  /** CPU time `ours` spends in its handler per handled event, µs. */
  handlerWorkUs?: number;
  /** The `node` binary that runs the load server and the clients. @defaultValue the benchmark's own */
  node?: string;
}

interface Scenario {
  id: string;
  title: string;
  parts: Part[];
  /** Why the scenario cannot run here; it is then reported as skipped. */
  skipped?: string;
}

interface Settings {
  rounds: number;
  events: number;
  guilds: number;
  idleShards: number;
  idleMs: number;
  startupShards: number;
  startupWindowMs: number;
  scenarios: string[];
  clients: string[] | null;
  cpuProf: string[];
  clientTimeoutMs: number;
  /** The node of the `zstd` scenario. */
  zstdNode: ZstdNode;
}

/** A client's result or failure, with what the load server saw of its IDENTIFYs when it checks them. */
type RunOutcome = (ClientResult | { client: string; error: string }) & { identify?: IdentifyStats };

interface Row {
  client: string;
  /** The part's label, e.g. `4 shards`. */
  label: string;
  shards: number;
  runs: number;
  eventsPerSec: number | null;
  cpuUsPerEvent: number | null;
  peakRssMb: number | null;
  rssMb: number | null;
  cpuMs: number | null;
  vsFloor: number | null;
  /** Against the fastest raw floor of the client's own compression (zlib-stream or zstd-stream). */
  vsOwnFloor: number | null;
  vsDjs: number | null;
  /** `startup`: ms until every shard was READY, the identify floor, and their ratio (median of the rounds'). */
  startupMs: number | null;
  floorMs: number | null;
  vsIdentifyFloor: number | null;
  /** `startup`: identify violations over all rounds, the median first-to-last IDENTIFY span, the smallest same-key gap. */
  identifyViolations: number | null;
  identifySpanMs: number | null;
  minKeyGapMs: number | null;
  failures: number;
}

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return value;
}

function listEnv(name: string, fallback: string[]): string[] {
  const raw = process.env[name];
  return raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : fallback;
}

function readSettings(): Settings {
  const events = intEnv('BENCH_EVENTS', DEFAULT_EVENTS.messages);
  const settings: Settings = {
    rounds: Math.max(1, intEnv('BENCH_ROUNDS', 5)),
    events,
    // GUILD_CREATEs are ~600 KB each: scale their count with BENCH_EVENTS (300 at the default 150,000).
    guilds: intEnv('BENCH_GUILDS', Math.min(DEFAULT_EVENTS.guilds, Math.max(20, Math.round((events * DEFAULT_EVENTS.guilds) / DEFAULT_EVENTS.messages)))),
    idleShards: intEnv('BENCH_IDLE_SHARDS', 100),
    idleMs: intEnv('BENCH_IDLE_MS', 3000),
    startupShards: Math.max(1, intEnv('BENCH_STARTUP_SHARDS', 32)),
    startupWindowMs: Math.max(1, intEnv('BENCH_STARTUP_WINDOW_MS', 1000)),
    scenarios: listEnv('BENCH_SCENARIOS', SCENARIO_IDS),
    clients: process.env.BENCH_CLIENTS ? listEnv('BENCH_CLIENTS', []) : null,
    cpuProf: listEnv('BENCH_CPU_PROF', []),
    clientTimeoutMs: intEnv('BENCH_CLIENT_TIMEOUT_MS', 180_000),
    zstdNode: { path: null, reason: 'not looked for' },
  };
  for (const s of settings.scenarios) if (!SCENARIO_IDS.includes(s)) throw new Error(`unknown scenario "${s}" (known: ${SCENARIO_IDS.join(', ')})`);
  for (const c of [...(settings.clients ?? []), ...settings.cpuProf]) {
    if (!(c in CLIENT_FILES)) throw new Error(`unknown client "${c}" (known: ${Object.keys(CLIENT_FILES).join(', ')})`);
  }
  if (settings.scenarios.includes('zstd')) settings.zstdNode = findZstdNode(process.env.BENCH_ZSTD_NODE);
  return settings;
}

function scenarios(settings: Settings): Scenario[] {
  const stream = (scenario: ScenarioName, events: number, shards: number, clients: ClientName[], handledEvent = 'MESSAGE_CREATE'): Part => ({
    label: `${shards} shard${shards === 1 ? '' : 's'}`,
    server: { scenario, events, shards },
    clients,
    mode: 'stream',
    handledEvent,
  });
  const zlibFloors = RAW_FLOORS.filter((c) => compressionOf(c) === 'zlib-stream');
  const floorsAndOurs: ClientName[] = ['frames-only', ...zlibFloors, 'ours', 'ours-core'];
  /** One shard of `messages` or `guilds`, labelled with the corpus; with `zstdNode`, served also as zstd-stream and run by that node. */
  const corpusPart = (scenario: 'messages' | 'guilds', clients: ClientName[], zstdNode?: string): Part => {
    const guilds = scenario === 'guilds';
    const part = stream(scenario, guilds ? settings.guilds : settings.events, 1, clients, guilds ? 'GUILD_CREATE' : 'MESSAGE_CREATE');
    return { ...part, label: scenario, ...(zstdNode ? { node: zstdNode, server: { ...part.server, zstd: true } } : {}) };
  };
  const zstdNode = settings.zstdNode;
  const all: Scenario[] = [
    {
      id: 'messages',
      title: `1) messages: ${settings.events} MESSAGE_CREATE, zlib-stream, 1 shard`,
      parts: [stream('messages', settings.events, 1, ['frames-only', ...zlibFloors, ...DJS, 'ours', 'ours-core'])],
    },
    {
      id: 'mixed',
      title: `2) mixed: ${settings.events} events (40% PRESENCE_UPDATE, 25% TYPING_START, 15% MESSAGE_REACTION_ADD, 20% MESSAGE_CREATE), 1 shard; ours handles only MESSAGE_CREATE`,
      parts: [stream('mixed', settings.events, 1, ['frames-only', ...zlibFloors, 'raw-filtered', 'ours', 'ours-core'])],
    },
    {
      id: 'guilds',
      title: `3) guilds: ${settings.guilds} GUILD_CREATE (1000 members, 50 channels, 100 roles), 1 shard; ours handles GUILD_CREATE`,
      parts: [stream('guilds', settings.guilds, 1, floorsAndOurs, 'GUILD_CREATE')],
    },
    {
      id: 'shards',
      title: `4) messages split over 4 and 16 shards (${settings.events} events in all)`,
      parts: [4, 16].map((n) => stream('messages', settings.events, n, ['frames-only', 'raw-zlib-sync', 'ours'])),
    },
    {
      id: 'workers',
      title: `6) workers: 4 shards in process vs in worker threads (2 per worker), ${settings.events} events of messages, of mixed (only MESSAGE_CREATE handled), and of mixed with 20 µs of handler CPU work per MESSAGE_CREATE`,
      parts: [
        ...(['messages', 'mixed'] as const).map((scenario) => ({
          ...stream(scenario, settings.events, 4, ['frames-only', 'ours', 'ours-workers']),
          label: `${scenario}, 4 shards`,
        })),
        { ...stream('mixed', settings.events, 4, ['ours', 'ours-workers']), label: 'mixed + 20 µs handler work, 4 shards', handlerWorkUs: 20 },
      ],
    },
    {
      id: 'idle',
      title: `5) idle: ${settings.idleShards} shards connected and READY, no traffic for ${settings.idleMs} ms`,
      parts: [
        {
          label: `${settings.idleShards} shards`,
          server: { scenario: 'idle', events: 0, shards: settings.idleShards },
          clients: ['raw-zlib-sync', 'djs-zlib-sync', 'ours', 'ours-core'],
          mode: 'idle',
          handledEvent: 'MESSAGE_CREATE',
        },
      ],
    },
    {
      id: 'startup',
      title: `7) startup: ${settings.startupShards} shards, max_concurrency ${MAX_CONCURRENCY}, identify window ${settings.startupWindowMs} ms; time until every shard is READY against the identify floor (${identifyWindows(settings.startupShards)} windows)`,
      parts: [
        {
          label: `${settings.startupShards} shards`,
          server: { scenario: 'idle', events: 0, shards: settings.startupShards, identifyWindowMs: settings.startupWindowMs },
          clients: ['djs-zlib-sync', 'ours', 'ours-core'],
          mode: 'startup',
          handledEvent: 'MESSAGE_CREATE',
        },
      ],
    },
    {
      id: 'engines',
      title: `8) engines: ours-core with each zlib-stream engine, ${settings.events} MESSAGE_CREATE and ${settings.guilds} GUILD_CREATE, 1 shard`,
      parts: (['messages', 'guilds'] as const).map((scenario) =>
        corpusPart(scenario, ['frames-only', 'raw-zlib-sync', 'raw-node-sync', 'ours-core', 'ours-core-node-stream', 'ours-core-zlib-sync', 'ours-core-fflate']),
      ),
    },
    {
      id: 'zstd',
      title: `9) zstd: zlib-stream against zstd-stream, ${settings.events} MESSAGE_CREATE and ${settings.guilds} GUILD_CREATE, 1 shard, load server and clients on ${zstdNode.path === null ? 'a Node with zstd' : `Node ${zstdNode.version} (${zstdNode.path})`}`,
      parts: (['messages', 'guilds'] as const).map((scenario) =>
        corpusPart(scenario, ['frames-only', 'raw-node-sync', 'raw-zstd-node', 'ours-core', 'ours-core-zstd-node', 'ours-core-zstd-fzstd'], zstdNode.path ?? process.execPath),
      ),
      ...(zstdNode.path === null ? { skipped: zstdNode.reason } : {}),
    },
  ];
  const only = settings.clients;
  if (only) for (const s of all) for (const part of s.parts) part.clients = part.clients.filter((c) => only.includes(c));
  return all.filter((s) => settings.scenarios.includes(s.id) && s.parts.some((part) => part.clients.length > 0));
}

/** Runs a transpiled script of BUILD_DIR in a child `node` process (`node` is the binary, the benchmark's own by default). */
function nodeScript(file: string, env: Record<string, string>, nodeArgs: string[] = [], node = process.execPath): ChildProcess {
  return runScript(join(BUILD_DIR, file), env, nodeArgs, node);
}

async function startServer(config: LoadServerConfig, node?: string): Promise<{ child: ChildProcess; ready: LoadServerReady }> {
  const child = nodeScript('bench/load-server.js', { BENCH_SERVER: JSON.stringify(config) }, [], node);
  const { line } = await waitForLine(child, READY_PREFIX, 20 * 60_000, `load server (${config.scenario})`);
  return { child, ready: JSON.parse(line) as LoadServerReady };
}

async function stopServer(child: ChildProcess): Promise<void> {
  killChild(child, 'SIGTERM');
  await waitForExit(child, 5_000);
}

async function runClient(name: ClientName, part: Part, ready: LoadServerReady, settings: Settings): Promise<RunOutcome> {
  const config: ClientConfig = {
    client: name,
    url: `ws://127.0.0.1:${ready.port}`,
    apiUrl: `http://127.0.0.1:${ready.port}/api`,
    token: TOKEN,
    plan: ready.plan,
    mode: part.mode,
    idleMs: settings.idleMs,
    handledEvent: part.handledEvent,
    handlerWorkUs: part.handlerWorkUs,
    identifyWindowMs: part.server.identifyWindowMs,
    timeoutMs: settings.clientTimeoutMs,
  };
  const nodeArgs = settings.cpuProf.includes(name)
    ? ['--cpu-prof', `--cpu-prof-dir=${join(RESULTS_DIR, 'profiles')}`, `--cpu-prof-name=${part.server.scenario}-${part.server.shards}-${name}-${Date.now()}.cpuprofile`]
    : [];
  const child = nodeScript(CLIENT_FILES[name], { BENCH_CLIENT: JSON.stringify(config) }, nodeArgs, part.node);
  let outcome: RunOutcome;
  try {
    const { line } = await waitForLine(child, RESULT_PREFIX, settings.clientTimeoutMs + 30_000, name);
    await waitForExit(child, 10_000);
    outcome = JSON.parse(line) as ClientResult;
  } catch (error) {
    killChild(child, 'SIGKILL');
    outcome = { client: name, error: (error as Error).message };
  }
  if (part.server.identifyWindowMs !== undefined) outcome.identify = await identifyStats(ready.port);
  return outcome;
}

/** What the load server saw of the last client's IDENTIFYs (and it starts counting afresh for the next client). */
async function identifyStats(port: number): Promise<IdentifyStats> {
  const response = await fetch(`http://127.0.0.1:${port}/bench/identifies`);
  if (!response.ok) throw new Error(`load server: GET /bench/identifies answered ${response.status}`);
  return (await response.json()) as IdentifyStats;
}

/** Identify windows `shards` shards need at the server's `max_concurrency`: the identify floor is that many windows. */
function identifyWindows(shards: number): number {
  return Math.ceil(shards / MAX_CONCURRENCY);
}

// ---- statistics and output ----------------------------------------------------------------------

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function isResult(outcome: RunOutcome | undefined): outcome is ClientResult {
  return outcome !== undefined && !('error' in outcome);
}

/** Medians per client; ratios are computed within each round against that round's fastest reference. */
function summarise(part: Part, rounds: Map<ClientName, RunOutcome>[]): Row[] {
  const best = (round: Map<ClientName, RunOutcome>, names: ClientName[]) => {
    const rates = names.map((n) => round.get(n)).filter(isResult).map((r) => r.eventsPerSec);
    return rates.length ? Math.max(...rates) : null;
  };
  return part.clients.map((client) => {
    const results = rounds.map((round) => round.get(client)).filter(isResult);
    const ratio = (refs: ClientName[]) =>
      median(
        rounds.flatMap((round) => {
          const own = round.get(client);
          const ref = best(round, refs);
          return isResult(own) && ref ? [own.eventsPerSec / ref] : [];
        }),
      );
    const pick = (key: keyof ClientResult) => median(results.map((r) => r[key] as number));
    const startup = part.mode === 'startup';
    const floorMs = startup ? identifyWindows(part.server.shards) * part.server.identifyWindowMs! : null;
    const checked = rounds.flatMap((round) => round.get(client)?.identify ?? []);
    const gaps = checked.flatMap((s) => (s.minKeyGapMs === null ? [] : [s.minKeyGapMs]));
    return {
      client,
      label: part.label,
      shards: part.server.shards,
      runs: results.length,
      eventsPerSec: part.mode === 'stream' ? pick('eventsPerSec') : null,
      cpuUsPerEvent: part.mode === 'stream' ? pick('cpuUsPerEvent') : null,
      peakRssMb: pick('peakRssMb'),
      rssMb: pick('rssMb'),
      cpuMs: pick('cpuMs'),
      vsFloor: part.mode !== 'stream' || client === 'frames-only' ? null : ratio(RAW_FLOORS),
      vsOwnFloor: part.mode !== 'stream' || client === 'frames-only' ? null : ratio(RAW_FLOORS.filter((f) => compressionOf(f) === compressionOf(client))),
      vsDjs: part.mode !== 'stream' || client === 'frames-only' ? null : ratio(DJS),
      startupMs: startup ? pick('startupMs') : null,
      floorMs,
      vsIdentifyFloor: startup && floorMs ? median(results.map((r) => r.startupMs! / floorMs)) : null,
      identifyViolations: checked.length ? checked.reduce((sum, s) => sum + s.violations, 0) : null,
      identifySpanMs: median(checked.flatMap((s) => (s.spanMs === null ? [] : [s.spanMs]))),
      minKeyGapMs: gaps.length ? Math.min(...gaps) : null,
      failures: rounds.length - results.length,
    };
  });
}

function fmt(value: number | null, digits = 0): string {
  if (value === null || !Number.isFinite(value)) return '-';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [line(headers), `|${widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|')}|`, ...rows.map(line)].join('\n');
}

function renderScenario(scenario: Scenario, rows: Row[], mode: Part['mode']): string {
  const multi = scenario.parts.length > 1;
  const name = (r: Row) => `${r.client}${multi ? ` (${r.label})` : ''}${r.failures ? ` [${r.failures} failed]` : ''}`;
  if (mode === 'startup') {
    const out = table(
      ['client', 'all READY ms', 'identify floor ms', 'time / floor', 'IDENTIFY span ms', 'min same-key gap ms', 'identify violations', 'peak RSS MB'],
      rows.map((r) => [
        name(r),
        fmt(r.startupMs),
        fmt(r.floorMs),
        fmt(r.vsIdentifyFloor, 2),
        fmt(r.identifySpanMs),
        fmt(r.minKeyGapMs),
        fmt(r.identifyViolations),
        fmt(r.peakRssMb, 1),
      ]),
    );
    return `${out}\nidentify violations: ${fmt(rows.reduce((sum, r) => sum + (r.identifyViolations ?? 0), 0))} (all clients, all rounds)`;
  }
  if (mode === 'idle') {
    return table(
      ['client', 'shards', 'peak RSS MB', 'RSS after idle MB', 'CPU ms while idle'],
      rows.map((r) => [name(r), String(r.shards), fmt(r.peakRssMb, 1), fmt(r.rssMb, 1), fmt(r.cpuMs, 1)]),
    );
  }
  const streaming = rows.filter((r) => r.client !== 'frames-only');
  const frames = rows.filter((r) => r.client === 'frames-only');
  // With clients of both compressions, each is also measured against the floor of its own.
  const bothCompressions = new Set(streaming.map((r) => compressionOf(r.client as ClientName))).size > 1;
  const out = table(
    ['client', 'events/s', 'CPU µs/event', 'peak RSS MB', 'vs fastest raw floor', ...(bothCompressions ? ['vs raw floor, same compression'] : []), 'vs fastest @discordjs/ws'],
    streaming.map((r) => [
      name(r),
      fmt(r.eventsPerSec),
      fmt(r.cpuUsPerEvent, 2),
      fmt(r.peakRssMb, 1),
      fmt(r.vsFloor, 2),
      ...(bothCompressions ? [fmt(r.vsOwnFloor, 2)] : []),
      fmt(r.vsDjs, 2),
    ]),
  );
  const ceiling = frames.map((r) => `frames-only${multi ? ` (${r.label})` : ''}: ${fmt(r.eventsPerSec)} messages/s`).join('; ');
  return ceiling ? `${out}\nserver ceiling, ${ceiling}` : out;
}

/**
 * Lines printed under a scenario's table about a part's corpus: the handled event's share of the events and of
 * their JSON bytes when the corpus mixes events, and the wire bytes of each compression when it is served as
 * zstd-stream too.
 */
function corpusNotes(part: Part, ready: LoadServerReady, labelled: boolean): string[] {
  const prefix = labelled ? `${part.label}: ` : '';
  const notes: string[] = [];
  const byName = Object.values(ready.eventBytes);
  const handled = ready.eventBytes[part.handledEvent];
  if (byName.length > 1 && handled) {
    const events = byName.reduce((sum, e) => sum + e.events, 0);
    const bytes = byName.reduce((sum, e) => sum + e.bytes, 0);
    notes.push(
      `${prefix}${part.handledEvent} (the handled event) is ${fmt((100 * handled.events) / events, 1)} % of the events and ${fmt((100 * handled.bytes) / bytes, 1)} % of their JSON bytes (${fmt(handled.bytes / 1_048_576, 1)} of ${fmt(bytes / 1_048_576, 1)} MB)`,
    );
  }
  if (ready.zstdBytes !== null) {
    const mb = (bytes: number) => `${fmt(bytes / 1_048_576, 1)} MB`;
    notes.push(
      `${prefix}wire bytes: JSON ${mb(ready.textBytes)}, zlib-stream ${mb(ready.zlibBytes)} (${fmt((100 * ready.zlibBytes) / ready.textBytes, 1)} %), zstd-stream ${mb(ready.zstdBytes)} (${fmt((100 * ready.zstdBytes) / ready.textBytes, 1)} %; zstd / zlib ${fmt(ready.zstdBytes / ready.zlibBytes, 2)})`,
    );
  }
  return notes;
}

function write(text = ''): void {
  process.stdout.write(`${text}\n`);
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const settings = readSettings();
  const date = new Date();
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    os: `${platform()} ${release()}`,
    memoryGb: Math.round(totalmem() / 1024 ** 3),
  };
  write(`nestjs-discord-gateway benchmark, ${date.toISOString()}`);
  write(`machine: ${machine.cpu}, ${machine.cores} cores, Node.js ${machine.node}, ${machine.os}, ${machine.memoryGb} GB, load average ${fmt(loadavg()[0], 2)}`);
  write(
    `rounds: ${settings.rounds}, events: ${settings.events}, guilds: ${settings.guilds}, idle: ${settings.idleShards} shards for ${settings.idleMs} ms, startup: ${settings.startupShards} shards with a ${settings.startupWindowMs} ms identify window, scenarios: ${settings.scenarios.join(',')}`,
  );
  write('medians over rounds; ratios = events/s ÷ the fastest reference of the same round, then the median of those ratios');
  transpileForBench(ROOT, BUILD_DIR);

  const report: Record<string, unknown>[] = [];
  for (const scenario of scenarios(settings)) {
    write();
    write(`## ${scenario.title}`);
    if (scenario.skipped) {
      write(`skipped: ${scenario.skipped}`);
      report.push({ id: scenario.id, title: scenario.title, skipped: scenario.skipped });
      continue;
    }
    const rows: Row[] = [];
    const parts: Record<string, unknown>[] = [];
    const notes: string[] = [];
    for (const part of scenario.parts) {
      const server = await startServer(part.server, part.node);
      const zstdMb = server.ready.zstdBytes === null ? '' : `, ${fmt(server.ready.zstdBytes / 1_048_576, 1)} MB zstd-stream`;
      write(
        `   load server (${part.label}): corpus ${fmt(server.ready.textBytes / 1_048_576, 1)} MB JSON, ${fmt(server.ready.zlibBytes / 1_048_576, 1)} MB zlib-stream${zstdMb}, built in ${fmt(server.ready.buildMs / 1000, 1)} s; load average ${fmt(loadavg()[0], 2)}`,
      );
      notes.push(...corpusNotes(part, server.ready, scenario.parts.length > 1));
      const loadBefore = loadavg()[0];
      const rounds: Map<ClientName, RunOutcome>[] = [];
      try {
        for (let round = 0; round < settings.rounds; round++) {
          const order = round % 2 === 0 ? part.clients : [...part.clients].reverse();
          const outcomes = new Map<ClientName, RunOutcome>();
          for (const client of order) {
            const outcome = await runClient(client, part, server.ready, settings);
            outcomes.set(client, outcome);
            const summary = isResult(outcome)
              ? part.mode === 'idle'
                ? `peak RSS ${outcome.peakRssMb} MB`
                : part.mode === 'startup'
                  ? `every shard READY after ${fmt(outcome.startupMs ?? null)} ms, peak RSS ${outcome.peakRssMb} MB`
                  : `${fmt(outcome.eventsPerSec)} events/s, ${outcome.cpuUsPerEvent} µs/event, peak RSS ${outcome.peakRssMb} MB`
              : `FAILED: ${outcome.error}`;
            const checked = outcome.identify
              ? `; IDENTIFYs ${outcome.identify.identifies} over ${fmt(outcome.identify.spanMs)} ms, violations ${outcome.identify.violations}`
              : '';
            process.stderr.write(`   [${scenario.id} ${part.label} round ${round + 1}/${settings.rounds}] ${client}: ${summary}${checked}\n`);
          }
          rounds.push(outcomes);
        }
      } finally {
        await stopServer(server.child);
      }
      const partRows = summarise(part, rounds);
      rows.push(...partRows);
      parts.push({
        label: part.label,
        server: {
          ...part.server,
          node: part.node ?? process.execPath,
          textBytes: server.ready.textBytes,
          zlibBytes: server.ready.zlibBytes,
          zstdBytes: server.ready.zstdBytes,
          eventBytes: server.ready.eventBytes,
          buildMs: server.ready.buildMs,
        },
        loadAverage: { before: loadBefore, after: loadavg()[0] },
        rounds: rounds.map((round) => Object.fromEntries(round)),
        medians: partRows,
      });
    }
    write(renderScenario(scenario, rows, scenario.parts[0].mode));
    for (const note of notes) write(note);
    report.push({ id: scenario.id, title: scenario.title, parts });
  }

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${date.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ date: date.toISOString(), machine, settings, scenarios: report }, null, 2)}\n`);
  write();
  write(`results written to ${file}`);
}

runBenchMain(main);
