import 'reflect-metadata';
import { Inject, Injectable, Module, type DynamicModule, type INestApplicationContext, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { GatewayIntentBits, GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import WebSocket from 'ws';
import {
  ClusterService,
  GatewayModule,
  OnEvent,
  ShardService,
  ShardState,
  type GatewayEventContext,
  type GatewayModuleOptions,
} from '../../lib';
import { LocalGateway, createMessage } from '../../lib/testing';
import { SeededRandom, mixSeed, mulberry32 } from '../../lib/testing/seeded-random';

/**
 * Chaos run: a LocalGateway and a real Nest app (GatewayModule with S shards) on 127.0.0.1. The gateway dispatches
 * MESSAGE_CREATE events across the shards at a steady rate while faults are injected at random (seeded), one at a
 * time, each on a shard that is ready; the next fault waits until that shard is ready again. The app's `@OnEvent`
 * handler records (shard, sequence, session) of every delivery; the checks compare that with what the gateway
 * dispatched to each session, with the IDENTIFYs it recorded and with every frame each client connection sent.
 */

/** Every fault the runner injects. */
export const CHAOS_FAULTS = [
  'drop-tcp',
  'acks-stopped',
  'op7-reconnect',
  'op9-resumable',
  'op9-not-resumable',
  'close-4000',
  'close-4001',
  'close-4002',
  'close-4003',
  'close-4005',
  'close-4007',
  'close-4008',
  'close-4009',
  'close-unknown',
  'corrupt-zlib',
  'invalid-json',
  'resume-url-refused',
  'slow-reads',
] as const;

export type ChaosFault = (typeof CHAOS_FAULTS)[number];

/**
 * Faults after which the protocol ends the session (op 9 `false`; a close code that means "start a new session";
 * a resume URL that cannot be reached, after which Discord's docs say to identify on the gateway URL). Events the
 * gateway dispatched to such a session after it ended are never delivered: they are counted apart, not as lost.
 */
const SESSION_ENDING = new Set<ChaosFault>([
  'op9-not-resumable',
  'close-4003',
  'close-4005',
  'close-4007',
  'close-4009',
  'resume-url-refused',
]);

/** Close codes the library does not know: it must resume after them. */
const UNKNOWN_CLOSE_CODES = [1011, 1012, 4006, 4100, 4999];

export interface ChaosOptions {
  /** Shards of the bot. @defaultValue `4` */
  shards?: number;
  /** MESSAGE_CREATE events the gateway dispatches in all. @defaultValue `20000` */
  events?: number;
  /** Faults to inject. @defaultValue `150` */
  faults?: number;
  /** Dispatch rate, events per second over all shards. @defaultValue `250` */
  eventsPerSecond?: number;
  /** Seed of every random choice (faults, shards, timings, jitter). @defaultValue `1` */
  seed?: number;
  /** HELLO `heartbeat_interval` (Discord: 41250 ms). @defaultValue `400` */
  heartbeatIntervalMs?: number;
  /** Command limit per connection and window (Discord: 120 per 60 s), for the gateway and the client. @defaultValue `120` */
  commandLimit?: number;
  /** @defaultValue `600` */
  commandWindowMs?: number;
  /** Identify window (Discord: 5 s), for the gateway's check and the client's queue. @defaultValue `100` */
  identifyWindowMs?: number;
  /** `max_concurrency` the gateway reports. @defaultValue `2` */
  maxConcurrency?: number;
  /** Keep the shards' command queues busy with presence updates, so the command limit is under pressure. @defaultValue `true` */
  commandPressure?: boolean;
  /** How long a shard may take to be ready again after a fault. @defaultValue `15000` */
  recoveryTimeoutMs?: number;
  /** How long to wait at the end for the last events to arrive. @defaultValue `20000` */
  drainTimeoutMs?: number;
  /** Receives every printed line (the last one is the summary). @defaultValue none */
  log?: (line: string) => void;
}

/** min / p50 / p95 / max of the fault-to-ready times, ms. */
export interface RecoveryStats {
  count: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
}

export interface ChaosReport {
  seed: number;
  shards: number;
  durationMs: number;
  /** MESSAGE_CREATE events the gateway dispatched. */
  events: number;
  /** Handler calls recorded. */
  delivered: number;
  faults: number;
  faultsByKind: Record<string, number>;
  /** (a) Dispatched events never delivered, other than the tail of an ended session. */
  lost: number;
  /** (a) Deliveries of a sequence already delivered in its session. */
  duplicated: number;
  /** (a) Deliveries with a lower sequence than the one before, in their session. */
  outOfOrder: number;
  /** (a) Deliveries of an event that was not dispatched to that session (or with no session). */
  unexpected: number;
  /** (a) The undelivered tails of sessions the protocol ended (allowed), in all and by fault. */
  droppedWithInvalidatedSessions: number;
  droppedByFault: Record<string, number>;
  invalidatedSessions: number;
  /** (b) IDENTIFYs the gateway refused for breaking the window, plus pairs of recorded IDENTIFYs too close in one bucket. */
  identifies: number;
  identifyViolations: number;
  identifyTimingViolations: number;
  /** (c) Windows in which a client connection sent more than the limit, and the most frames seen in one window. */
  rateLimitViolations: number;
  maxFramesInWindow: number;
  framesSent: number;
  /** Server-side 4008 closes the runner did not inject (the gateway counted more than the limit on arrival). */
  serverRateLimitCloses: number;
  /** (d) Faults after which the shard was not ready again in time, and shards not ready at the end. */
  notRecovered: number;
  shardsNotReadyAtEnd: number;
  /** Faults the shard rode out without reconnecting (slow reads shorter than the zombie check). */
  absorbed: number;
  /** (e) */
  recovery: RecoveryStats;
  violations: string[];
  pass: boolean;
  /** The one-line summary. */
  summary: string;
}

/** What the handler saw: per session id, the sequences delivered in order. */
class DeliveryRecorder {
  readonly bySession = new Map<string, number[]>();
  total = 0;
  withoutSession = 0;

  record(sequence: number, sessionId: string | null): void {
    this.total++;
    if (sessionId === null) {
      this.withoutSession++;
      return;
    }
    let list = this.bySession.get(sessionId);
    if (!list) this.bySession.set(sessionId, (list = []));
    list.push(sequence);
  }
}

const CHAOS_RECORDER = Symbol('CHAOS_RECORDER');

@Injectable()
class ChaosEventsHandler {
  constructor(
    @Inject(CHAOS_RECORDER) private readonly recorder: DeliveryRecorder,
    @Inject(ShardService) private readonly shards: ShardService,
  ) {}

  @OnEvent('MESSAGE_CREATE')
  onMessage(_message: unknown, context: GatewayEventContext): void {
    this.recorder.record(context.sequence, this.shards.info(context.shardId)?.sessionId ?? null);
  }
}

@Module({})
class ChaosAppModule {
  static register(options: GatewayModuleOptions, recorder: DeliveryRecorder): DynamicModule {
    return {
      module: ChaosAppModule,
      imports: [GatewayModule.forRoot(options)],
      providers: [{ provide: CHAOS_RECORDER, useValue: recorder }, ChaosEventsHandler],
    };
  }
}

/** Keeps Nest's warnings and errors (the shard debug lines are only counted). */
class QuietLogger implements LoggerService {
  readonly problems: string[] = [];
  debugLines = 0;
  log(): void {}
  verbose(): void {}
  debug(): void {
    this.debugLines++;
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.problems.push(`warn ${rest.at(-1) ?? ''}: ${String(message)}`);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.problems.push(`error ${rest.at(-1) ?? ''}: ${String(message)}`);
  }
  fatal(message: unknown): void {
    this.problems.push(`fatal: ${String(message)}`);
  }
}

interface FaultRecord {
  kind: ChaosFault;
  shardId: number;
  at: number;
  detail: string;
  recovered: boolean;
  absorbed: boolean;
  recoveryMs: number | null;
}

interface StateEntry {
  state: ShardState;
  at: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * Records the time of every frame each client WebSocket sends, for check (c). Client sockets are the ones with a
 * `url` (server-side sockets have none). Returns a function that stops recording.
 */
function recordClientSends(sink: Map<WebSocket, number[]>): () => void {
  const original = WebSocket.prototype.send;
  WebSocket.prototype.send = function patchedSend(this: WebSocket, ...args: Parameters<WebSocket['send']>) {
    if (this.url && this.readyState === WebSocket.OPEN) {
      let list = sink.get(this);
      if (!list) sink.set(this, (list = []));
      list.push(Date.now());
    }
    return original.apply(this, args);
  } as WebSocket['send'];
  return () => {
    WebSocket.prototype.send = original;
  };
}

/** Runs the chaos scenario and returns the computed checks. Prints through `options.log`. */
export async function runChaos(options: ChaosOptions = {}): Promise<ChaosReport> {
  const shardCount = options.shards ?? 4;
  const eventTotal = options.events ?? 20_000;
  const faultTotal = options.faults ?? 150;
  const rate = options.eventsPerSecond ?? 250;
  const seed = options.seed ?? 1;
  const heartbeat = options.heartbeatIntervalMs ?? 400;
  const commandLimit = options.commandLimit ?? 120;
  const commandWindowMs = options.commandWindowMs ?? 600;
  const identifyWindowMs = options.identifyWindowMs ?? 100;
  const maxConcurrency = options.maxConcurrency ?? 2;
  const recoveryTimeoutMs = options.recoveryTimeoutMs ?? 15_000;
  const drainTimeoutMs = options.drainTimeoutMs ?? 20_000;
  const log = options.log ?? (() => undefined);
  const started = Date.now();

  const gateway = await LocalGateway.start({
    shards: shardCount,
    heartbeatInterval: heartbeat,
    commandLimit,
    // The gateway stamps frames on arrival: a margin for the delay between the client sending a frame and the
    // gateway reading it (as the protocol tests do), so that arrival jitter alone does not close with 4008.
    commandWindowMs: commandWindowMs - Math.max(1, Math.round(commandWindowMs * 0.05)),
    identifyWindowMs,
    sessionStartLimit: { max_concurrency: maxConcurrency },
  });
  const clientSends = new Map<WebSocket, number[]>();
  const stopRecordingSends = recordClientSends(clientSends);
  const recorder = new DeliveryRecorder();
  const logger = new QuietLogger();
  let app: INestApplicationContext | null = null;

  /** Per session id: the shard and the MESSAGE_CREATE sequences dispatched to it, in order. */
  const dispatched = new Map<string, { shardId: number; seqs: number[] }>();
  /** Sessions a session-ending fault hit, with that fault. */
  const endedByFault = new Map<string, ChaosFault>();
  /** Newest session the gateway started or resumed, per shard: dispatches go only to it. */
  const liveSession = new Map<number, string>();
  gateway.on('ready', ({ shardId, sessionId }: { shardId: number; sessionId: string }) => liveSession.set(shardId, sessionId));
  const stateLog = new Map<number, StateEntry[]>();
  const faults: FaultRecord[] = [];
  const injectedRateLimitCloses = new Set<number>();
  let dispatchedCount = 0;
  let stopPressure = false;
  let commandsRejected = 0;

  try {
    app = await NestFactory.createApplicationContext(
      ChaosAppModule.register(
        {
          token: gateway.token,
          intents: GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessages,
          apiUrl: gateway.apiUrl,
          shards: { total: shardCount, from: 0, to: shardCount - 1 },
          identifyWindowMs,
          handshakeTimeout: 2_000,
          helloTimeout: 2_000,
          readyTimeout: 2_000,
          closeTimeout: 300,
          // The reconnect policy scaled like the command window (1/100 of Discord's 60 s).
          backoff: { baseMs: 10, maxMs: 600, resetAfterMs: 300 },
          reconnectLimit: { max: 10, windowMs: commandWindowMs },
          invalidSessionDelay: { minMs: 10, maxMs: 50 },
          commandRateLimit: { limit: commandLimit, windowMs: commandWindowMs },
          random: mulberry32(mixSeed(seed, 2)),
          shutdown: 'end-sessions',
        },
        recorder,
      ),
      { logger, abortOnError: false },
    );
    const cluster = app.get(ClusterService);
    const shardService = app.get(ShardService);
    for (let id = 0; id < shardCount; id++) stateLog.set(id, [{ state: ShardState.Ready, at: Date.now() }]);
    const stateSub = cluster.states$.subscribe(({ shardId, state }) => stateLog.get(shardId)?.push({ state, at: Date.now() }));
    const stateOf = (id: number) => shardService.info(id)?.state;
    const isReady = (id: number) => stateOf(id) === ShardState.Ready && gateway.connectionOf(id)?.handshakeDone === true;
    log(`chaos: seed ${seed}, ${shardCount} shards ready in ${Date.now() - started} ms; ${eventTotal} events at ${rate}/s, ${faultTotal} faults`);

    // ---- steady dispatch ---------------------------------------------------------------------------
    const dispatchMs = Math.round((eventTotal / rate) * 1000);
    const dispatchStart = Date.now();
    const dispatcher = (async () => {
      let turn = 0;
      while (dispatchedCount < eventTotal) {
        const due = Math.min(eventTotal, Math.floor(((Date.now() - dispatchStart) / 1000) * rate));
        while (dispatchedCount < due) {
          // Round robin over the shards whose newest session still exists on the gateway (after op 9 false it is
          // gone until the next READY: events then wait).
          let shardId = -1;
          for (let i = 0; i < shardCount; i++) {
            const candidate = (turn + i) % shardCount;
            const sessionId = gateway.sessionOf(candidate);
            if (sessionId !== undefined && sessionId === liveSession.get(candidate)) {
              shardId = candidate;
              break;
            }
          }
          if (shardId < 0) break;
          turn = shardId + 1;
          const sessionId = gateway.sessionOf(shardId)!;
          const index = dispatchedCount++;
          const s = gateway.dispatch(shardId, 'MESSAGE_CREATE', createMessage(mixSeed(seed, index), { content: `chaos ${index}` }));
          let entry = dispatched.get(sessionId);
          if (!entry) dispatched.set(sessionId, (entry = { shardId, seqs: [] }));
          entry.seqs.push(s);
        }
        await sleep(5);
      }
    })();

    // ---- command pressure ----------------------------------------------------------------------------
    const outstanding = new Array<number>(shardCount).fill(0);
    const pressureRng = new SeededRandom(mixSeed(seed, 3));
    const pressure = (async () => {
      if (options.commandPressure === false) return;
      let n = 0;
      while (!stopPressure) {
        for (let id = 0; id < shardCount; id++) {
          if (!pressureRng.chance(0.15)) continue;
          const burst = Math.min(pressureRng.int(20, 200), 300 - outstanding[id]);
          for (let i = 0; i < burst; i++) {
            outstanding[id]++;
            shardService
              .setPresence({ since: null, afk: false, status: PresenceUpdateStatus.Online, activities: [{ name: `chaos ${n++}`, type: 0 }] }, id)
              .catch(() => commandsRejected++)
              .finally(() => outstanding[id]--);
          }
        }
        await sleep(50);
      }
    })();

    // ---- faults ------------------------------------------------------------------------------------
    const faultRng = new SeededRandom(mixSeed(seed, 4));
    const slotMs = dispatchMs / Math.max(1, faultTotal);
    // Every kind once first (in a seeded order), so that even a short run covers them all; then at random.
    const kindOrder = [...CHAOS_FAULTS];
    for (let i = kindOrder.length - 1; i > 0; i--) {
      const j = faultRng.int(0, i);
      [kindOrder[i], kindOrder[j]] = [kindOrder[j], kindOrder[i]];
    }
    const inject = (kind: ChaosFault, shardId: number): string => {
      switch (kind) {
        case 'drop-tcp':
          gateway.dropShard(shardId);
          return '';
        case 'acks-stopped':
          gateway.setAcks(shardId, false);
          return '';
        case 'op7-reconnect':
          gateway.reconnect(shardId);
          return '';
        case 'op9-resumable':
          gateway.invalidateSession(shardId, true);
          return '';
        case 'op9-not-resumable':
          gateway.invalidateSession(shardId, false);
          return '';
        case 'close-unknown': {
          const code = faultRng.pick(UNKNOWN_CLOSE_CODES);
          gateway.closeShard(shardId, code, 'chaos');
          return `code ${code}`;
        }
        case 'corrupt-zlib':
          gateway.sendCorruptZlib(shardId);
          return '';
        case 'invalid-json':
          gateway.sendInvalidJson(shardId);
          return '';
        case 'resume-url-refused':
          // The resume node refuses the upgrade; a TCP drop makes the shard go there.
          gateway.behaviour.refuseResume = true;
          gateway.dropShard(shardId);
          return '';
        case 'slow-reads': {
          const ms = faultRng.int(Math.round(heartbeat / 4), heartbeat * 3);
          gateway.slowReads(shardId, ms);
          return `${ms} ms`;
        }
        default: {
          const code = Number(kind.slice('close-'.length));
          if (code === 4008) injectedRateLimitCloses.add(gateway.connectionOf(shardId)!.id);
          gateway.closeShard(shardId, code, 'chaos');
          return '';
        }
      }
    };

    const awaitRecovery = async (record: FaultRecord, mark: number, absorbAfterMs: number | null): Promise<void> => {
      const entries = stateLog.get(record.shardId)!;
      const deadline = record.at + recoveryTimeoutMs;
      while (Date.now() < deadline) {
        const since = entries.slice(mark);
        const left = since.findIndex((e) => e.state !== ShardState.Ready);
        if (left >= 0) {
          const back = since.slice(left).find((e) => e.state === ShardState.Ready);
          if (back && isReady(record.shardId)) {
            record.recovered = true;
            record.recoveryMs = back.at - record.at;
            return;
          }
        } else if (absorbAfterMs !== null && Date.now() >= record.at + absorbAfterMs && isReady(record.shardId)) {
          record.recovered = true;
          record.absorbed = true;
          return;
        }
        await sleep(2);
      }
    };

    const faultLoop = (async () => {
      for (let i = 0; i < faultTotal; i++) {
        const slot = dispatchStart + (i + faultRng.float()) * slotMs;
        if (slot > Date.now()) await sleep(slot - Date.now());
        let ready: number[] = [];
        for (let wait = 0; wait < 2_000; wait++) {
          ready = Array.from({ length: shardCount }, (_, id) => id).filter(isReady);
          if (ready.length > 0) break;
          await sleep(5);
        }
        if (ready.length === 0) {
          log(`chaos: no shard ready for fault ${i + 1}; stopping faults`);
          break;
        }
        const shardId = faultRng.pick(ready);
        const kind = i < kindOrder.length ? kindOrder[i] : faultRng.pick(CHAOS_FAULTS);
        const session = gateway.sessionOf(shardId);
        if (session && SESSION_ENDING.has(kind)) endedByFault.set(session, kind);
        const mark = stateLog.get(shardId)!.length;
        const record: FaultRecord = { kind, shardId, at: Date.now(), detail: '', recovered: false, absorbed: false, recoveryMs: null };
        faults.push(record);
        try {
          record.detail = inject(kind, shardId);
          const slowMs = kind === 'slow-reads' ? Number(record.detail.split(' ')[0]) : 0;
          await awaitRecovery(record, mark, kind === 'slow-reads' ? slowMs + heartbeat * 2 : null);
        } finally {
          gateway.behaviour.refuseResume = false;
        }
        if (!record.recovered) log(`chaos: shard ${shardId} not ready ${recoveryTimeoutMs} ms after ${kind} ${record.detail}`);
      }
    })();

    await Promise.all([dispatcher, faultLoop]);
    stopPressure = true;
    await pressure;

    // ---- drain: every session that was not ended must get all its events ----------------------------
    const undelivered = () => {
      let missing = 0;
      for (const [sessionId, { seqs }] of dispatched) {
        if (endedByFault.has(sessionId)) continue;
        const got = new Set(recorder.bySession.get(sessionId) ?? []);
        for (const s of seqs) if (!got.has(s)) missing++;
      }
      return missing;
    };
    const drainDeadline = Date.now() + drainTimeoutMs;
    while (undelivered() > 0 && Date.now() < drainDeadline) await sleep(20);
    const shardsNotReadyAtEnd = Array.from({ length: shardCount }, (_, id) => id).filter((id) => !isReady(id)).length;
    stateSub.unsubscribe();

    // ---- (a) exactly once, in order, per session --------------------------------------------------------
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    let unexpected = recorder.withoutSession;
    let droppedWithInvalidatedSessions = 0;
    const droppedByFault: Record<string, number> = {};
    const details: string[] = [];
    for (const [sessionId, delivered] of recorder.bySession) {
      if (!dispatched.has(sessionId)) {
        unexpected += delivered.length;
        details.push(`session ${sessionId.slice(0, 8)}: ${delivered.length} deliveries for a session nothing was dispatched to`);
      }
    }
    for (const [sessionId, { shardId, seqs }] of dispatched) {
      const delivered = recorder.bySession.get(sessionId) ?? [];
      const wanted = new Set(seqs);
      const seen = new Set<number>();
      let previous = -Infinity;
      let highest = -Infinity;
      for (const s of delivered) {
        if (!wanted.has(s)) unexpected++;
        else if (seen.has(s)) duplicated++;
        if (s < previous) outOfOrder++;
        previous = s;
        seen.add(s);
        if (wanted.has(s)) highest = Math.max(highest, s);
      }
      const missing = seqs.filter((s) => !seen.has(s));
      const fault = endedByFault.get(sessionId);
      // Only the tail after the last delivery of an ended session may be missing.
      const tail = fault ? missing.filter((s) => s > highest).length : 0;
      droppedWithInvalidatedSessions += tail;
      if (fault && tail > 0) droppedByFault[fault] = (droppedByFault[fault] ?? 0) + tail;
      if (missing.length - tail > 0) {
        lost += missing.length - tail;
        details.push(`shard ${shardId} session ${sessionId.slice(0, 8)}: ${missing.length - tail} lost (first ${missing.find((s) => !fault || s <= highest)})`);
      }
    }

    // ---- (b) IDENTIFY buckets and windows ----------------------------------------------------------------
    const identifies = gateway.framesOf(GatewayOpcodes.Identify);
    let identifyTimingViolations = 0;
    const lastByKey = new Map<number, number>();
    for (const frame of identifies) {
      const key = (frame.shardId ?? 0) % maxConcurrency;
      const last = lastByKey.get(key);
      if (last !== undefined && frame.at - last < identifyWindowMs) {
        identifyTimingViolations++;
        details.push(`IDENTIFY of shard ${frame.shardId} ${frame.at - last} ms after the previous one of bucket ${key}`);
      }
      lastByKey.set(key, frame.at);
    }

    // ---- (c) frames each client connection sent per sliding window -------------------------------------
    let rateLimitViolations = 0;
    let maxFramesInWindow = 0;
    let framesSent = 0;
    for (const times of clientSends.values()) {
      framesSent += times.length;
      let from = 0;
      let overSince = false;
      for (let to = 0; to < times.length; to++) {
        while (times[from] <= times[to] - commandWindowMs) from++;
        const inWindow = to - from + 1;
        maxFramesInWindow = Math.max(maxFramesInWindow, inWindow);
        if (inWindow > commandLimit && !overSince) rateLimitViolations++;
        overSince = inWindow > commandLimit;
      }
    }
    const serverRateLimitCloses = gateway.connections.filter(
      (c) => c.closedByServer && c.closeCode === 4008 && !injectedRateLimitCloses.has(c.id),
    ).length;

    // ---- (d) and (e) -----------------------------------------------------------------------------------
    const notRecovered = faults.filter((f) => !f.recovered).length;
    const absorbed = faults.filter((f) => f.absorbed).length;
    const times = faults.filter((f) => f.recoveryMs !== null).map((f) => f.recoveryMs!).sort((a, b) => a - b);
    const recovery: RecoveryStats = {
      count: times.length,
      min: times[0] ?? 0,
      p50: percentile(times, 50),
      p95: percentile(times, 95),
      max: times.at(-1) ?? 0,
    };
    const faultsByKind: Record<string, number> = {};
    for (const f of faults) faultsByKind[f.kind] = (faultsByKind[f.kind] ?? 0) + 1;

    const violations: string[] = [];
    if (lost > 0) violations.push(`${lost} events lost`);
    if (duplicated > 0) violations.push(`${duplicated} events delivered twice`);
    if (outOfOrder > 0) violations.push(`${outOfOrder} events out of order`);
    if (unexpected > 0) violations.push(`${unexpected} deliveries of events not dispatched to their session`);
    if (gateway.identifyViolations > 0) violations.push(`${gateway.identifyViolations} IDENTIFYs refused by the gateway's window check`);
    if (identifyTimingViolations > 0) violations.push(`${identifyTimingViolations} IDENTIFYs closer than ${identifyWindowMs} ms in one bucket`);
    if (rateLimitViolations > 0) violations.push(`${rateLimitViolations} windows over ${commandLimit} frames per ${commandWindowMs} ms`);
    if (notRecovered > 0) violations.push(`${notRecovered} faults not recovered within ${recoveryTimeoutMs} ms`);
    if (shardsNotReadyAtEnd > 0) violations.push(`${shardsNotReadyAtEnd} shards not ready at the end`);
    if (faults.length < faultTotal) violations.push(`only ${faults.length} of ${faultTotal} faults injected`);
    if (dispatchedCount < eventTotal) violations.push(`only ${dispatchedCount} of ${eventTotal} events dispatched`);

    const durationMs = Date.now() - started;
    log(`chaos: ${dispatchedCount} events dispatched over ${dispatched.size} sessions, ${recorder.total} delivered, ${(durationMs / 1000).toFixed(1)} s`);
    log(`chaos: faults by kind: ${Object.entries(faultsByKind).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    log(`chaos: (a) lost ${lost}, duplicated ${duplicated}, out of order ${outOfOrder}, unexpected ${unexpected}; ` +
      `${droppedWithInvalidatedSessions} dropped with ${endedByFault.size} ended sessions (${Object.entries(droppedByFault).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'})`);
    log(`chaos: (b) ${identifies.length} IDENTIFYs, ${gateway.identifyViolations} refused by the gateway, ${identifyTimingViolations} closer than ${identifyWindowMs} ms per bucket (max_concurrency ${maxConcurrency})`);
    log(`chaos: (c) ${framesSent} frames sent on ${clientSends.size} connections, at most ${maxFramesInWindow} in any ${commandWindowMs} ms window (limit ${commandLimit}), ${rateLimitViolations} over; ` +
      `${serverRateLimitCloses} 4008 closes not injected; ${commandsRejected} presence updates rejected`);
    log(`chaos: (d) ${faults.length - notRecovered} of ${faults.length} faults recovered (${absorbed} without reconnecting), ${shardsNotReadyAtEnd} shards not ready at the end`);
    log(`chaos: (e) recovery over ${recovery.count} reconnects: min ${recovery.min} ms, p50 ${recovery.p50} ms, p95 ${recovery.p95} ms, max ${recovery.max} ms`);
    for (const line of details.slice(0, 20)) log(`chaos: ${line}`);
    const problems = new Map<string, number>();
    for (const line of logger.problems) {
      const key = line.replace(/Shard \d+/g, 'Shard N');
      problems.set(key, (problems.get(key) ?? 0) + 1);
    }
    for (const [line, count] of problems) log(`chaos: nest ${line}${count > 1 ? ` (x${count})` : ''}`);

    const pass = violations.length === 0;
    const summary =
      `chaos: ${dispatchedCount} events, ${faults.length} faults, ${lost} lost, ${duplicated} duplicated, ${outOfOrder} out of order, ` +
      `${droppedWithInvalidatedSessions} dropped with invalidated sessions, ${gateway.identifyViolations + identifyTimingViolations} identify violations, ` +
      `${rateLimitViolations} rate-limit violations, recovery p50 ${recovery.p50} ms p95 ${recovery.p95} ms max ${recovery.max} ms: ${pass ? 'PASS' : 'FAIL'}`;
    if (!pass) log(`chaos: violations: ${violations.join('; ')}`);
    log(summary);
    return {
      seed,
      shards: shardCount,
      durationMs,
      events: dispatchedCount,
      delivered: recorder.total,
      faults: faults.length,
      faultsByKind,
      lost,
      duplicated,
      outOfOrder,
      unexpected,
      droppedWithInvalidatedSessions,
      droppedByFault,
      invalidatedSessions: endedByFault.size,
      identifies: identifies.length,
      identifyViolations: gateway.identifyViolations,
      identifyTimingViolations,
      rateLimitViolations,
      maxFramesInWindow,
      framesSent,
      serverRateLimitCloses,
      notRecovered,
      shardsNotReadyAtEnd,
      absorbed,
      recovery,
      violations,
      pass,
      summary,
    };
  } finally {
    stopPressure = true;
    stopRecordingSends();
    if (app) await app.close();
    await gateway.close();
  }
}
