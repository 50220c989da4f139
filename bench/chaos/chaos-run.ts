import 'reflect-metadata';
import { Inject, Injectable, Module, type DynamicModule, type INestApplicationContext, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { GatewayIntentBits, GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import {
  ClusterService,
  GatewayModule,
  OnEvent,
  ShardService,
  ShardState,
  type GatewayEventContext,
  type GatewayModuleOptions,
} from '../../lib/nest';
import {
  LocalGateway,
  createMessage,
  type LocalDuplicateDispatch,
  type LocalGatewayConnection,
  type RecordedFrame,
} from '../../lib/nest/testing';
import { SeededRandom, mixSeed, mulberry32 } from '../../lib/core/testing/seeded-random';
import { MALFORMED_READY_GUILDS, createMalformedDispatch } from './malformed-payloads';

/**
 * Chaos run: a LocalGateway and a real Nest app (GatewayModule with S shards) on 127.0.0.1. The gateway dispatches
 * MESSAGE_CREATE events across the shards at a steady rate while faults are injected at random (seeded), one at a
 * time, each on a shard that is ready; the next fault waits until that shard is ready again. The app's `@OnEvent`
 * handler records (shard, sequence, session) of every delivery; the checks compare that with what the gateway
 * dispatched to each session, with the IDENTIFYs it recorded and with every frame each client connection sent.
 * The gateway runs in chaos mode: RESUMEs sometimes replay from before their `seq` and events are sometimes sent
 * twice, so that the client's duplicate filter is exercised.
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
  'malformed-payloads',
  'malformed-ready',
  'churn-after-ready',
] as const;

export type ChaosFault = (typeof CHAOS_FAULTS)[number];

/**
 * Faults after which the gateway has ended the session (op 9 `false`; a close code that means "start a new
 * session"; a resume URL that cannot be reached, after which Discord's docs say to identify on the gateway URL).
 * Of such a session, events dispatched after its last heartbeat ACK may go undelivered (excused losses, counted
 * apart); any other missing event is lost.
 */
const SESSION_ENDING = new Set<ChaosFault>([
  'op9-not-resumable',
  'close-4003',
  'close-4005',
  'close-4007',
  'close-4009',
  'resume-url-refused',
  'malformed-ready',
]);

/** Session-ending faults that drop the TCP connection without a close frame. */
const DROPS_CONNECTION = new Set<ChaosFault>(['resume-url-refused']);

/**
 * Most reconnects one shard may make in any 60 s. Each injected fault costs a correct client one or two connections,
 * and a churn-after-READY of `churnMs` about fifteen (4 s) when its backoff keeps growing while sessions die at once; a
 * client that retries at 0 ms makes hundreds. Faults are spread so that one shard gets at most
 * {@link MAX_FAULTS_PER_SHARD_PER_MINUTE} of them in 60 s.
 */
export const MAX_RECONNECTS_PER_MINUTE = 120;

/** Most faults injected on one shard in any 60 s: a third of {@link MAX_RECONNECTS_PER_MINUTE}. */
export const MAX_FAULTS_PER_SHARD_PER_MINUTE = 40;

/** The checks of a chaos run, as named in {@link ChaosReport.failedChecks}. */
export const CHAOS_CHECKS = [
  'lost',
  'duplicated',
  'out-of-order',
  'unexpected',
  'identify',
  'rate-limit',
  'reconnect-rate',
  'recovery',
  'crash',
  'incomplete',
] as const;

export type ChaosCheck = (typeof CHAOS_CHECKS)[number];

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
  /**
   * `max_concurrency` the gateway reports. The default puts at least two shards in every bucket, so that identify
   * spacing is checked with two shards too. @defaultValue `max(1, floor(shards / 2))`
   */
  maxConcurrency?: number;
  /** How long one churn-after-READY fault closes every new session of its shard right after READY/RESUMED. @defaultValue `4000` */
  churnMs?: number;
  /** Chance that a RESUME's replay overlaps events the client already had (the gateway's chaos mode). @defaultValue `0.5` */
  replayOverlapChance?: number;
  /** Chance per dispatch that a recent event is sent again (the gateway's chaos mode). @defaultValue `0.01` */
  resendChance?: number;
  /** Keep the shards' command queues busy with presence updates, so the command limit is under pressure. @defaultValue `true` */
  commandPressure?: boolean;
  /** How long a shard may take to be ready again after a fault. @defaultValue `15000` */
  recoveryTimeoutMs?: number;
  /** How long to wait at the end for the last events to arrive (a bound for a busy machine; it ends as soon as they have). @defaultValue `60000` */
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
  /**
   * (a) Excused losses: undelivered events of sessions the gateway ended, dispatched after the last heartbeat ACK of
   * the session and after its last delivery. `excusedLossesAllowed` counts every event the protocol allowed to lose
   * (dispatched after that ACK). Both by fault kind too.
   */
  excusedLosses: number;
  excusedLossesAllowed: number;
  excusedByFault: Record<string, { excused: number; allowed: number }>;
  invalidatedSessions: number;
  /** (a) Dispatches the gateway sent again (overlapping replays, re-sends), and those of the handled event. */
  duplicatesInjected: number;
  duplicatesInjectedHandled: number;
  /** Malformed dispatches sent (malformed-payloads and malformed-ready faults). */
  malformedPayloads: number;
  /**
   * (b) IDENTIFYs recorded; those the gateway refused for arriving within the window (shown); and the violations:
   * IDENTIFYs of one bucket that the client sent closer than the window, by its own send times.
   */
  identifies: number;
  identifyViolations: number;
  identifyTimingViolations: number;
  /**
   * (c) Windows in which a client connection sent more than the limit, plus connections the gateway closed with 4008
   * without the runner injecting it; and the most frames seen in one window.
   */
  rateLimitViolations: number;
  maxFramesInWindow: number;
  framesSent: number;
  /** Server-side 4008 closes the runner did not inject (the gateway counted more than the limit on arrival): violations. */
  serverRateLimitCloses: number;
  /** (f) Reconnects in all, and the most one shard made in any 60 s (bound {@link MAX_RECONNECTS_PER_MINUTE}). */
  reconnects: number;
  maxReconnectsPerMinute: number;
  /** Errors that reached the process's uncaught-exception or unhandled-rejection path (each would end a process). */
  uncaughtErrors: number;
  /** (d) Faults after which the shard was not ready again in time, and shards not ready at the end. */
  notRecovered: number;
  shardsNotReadyAtEnd: number;
  /** Faults the shard rode out without reconnecting (slow reads shorter than the zombie check). */
  absorbed: number;
  /** (e) */
  recovery: RecoveryStats;
  violations: string[];
  /** The checks that failed, and the violations of each. */
  failedChecks: ChaosCheck[];
  violationsByCheck: Partial<Record<ChaosCheck, string[]>>;
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

/** The frames one client WebSocket sent: the local port of its TCP connection and the time of each frame. */
interface ClientSends {
  localPort: number | null;
  times: number[];
}

/**
 * Records the time of every frame each client WebSocket sends, for check (c), with the socket's local port (the
 * gateway sees it as the connection's remote port). Client sockets are the ones with a `url` (server-side sockets
 * have none). Returns a function that stops recording.
 */
function recordClientSends(sink: Map<WebSocket, ClientSends>): () => void {
  const original = WebSocket.prototype.send;
  WebSocket.prototype.send = function patchedSend(this: WebSocket, ...args: Parameters<WebSocket['send']>) {
    if (this.url && this.readyState === WebSocket.OPEN) {
      let sends = sink.get(this);
      if (!sends) {
        const socket = (this as unknown as { _socket?: Socket })._socket;
        sink.set(this, (sends = { localPort: socket?.localPort ?? null, times: [] }));
      }
      sends.times.push(Date.now());
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
  const maxConcurrency = options.maxConcurrency ?? Math.max(1, Math.floor(shardCount / 2));
  const churnMs = options.churnMs ?? 4_000;
  const recoveryTimeoutMs = options.recoveryTimeoutMs ?? 15_000;
  const drainTimeoutMs = options.drainTimeoutMs ?? 60_000;
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
    chaos: {
      random: mulberry32(mixSeed(seed, 5)),
      replayOverlapChance: options.replayOverlapChance ?? 0.5,
      resendChance: options.resendChance ?? 0.01,
    },
  });
  let duplicatesInjectedHandled = 0;
  gateway.on('duplicate', (duplicate: LocalDuplicateDispatch) => {
    if (duplicate.t === 'MESSAGE_CREATE') duplicatesInjectedHandled++;
  });
  // An error on these paths would end a real process: count it as a crash and keep checking.
  const uncaught: string[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error instanceof Error ? error.message : String(error));
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const clientSends = new Map<WebSocket, ClientSends>();
  const stopRecordingSends = recordClientSends(clientSends);
  const recorder = new DeliveryRecorder();
  const logger = new QuietLogger();
  let app: INestApplicationContext | null = null;

  /**
   * Per session id: the shard, the MESSAGE_CREATE sequences dispatched to it, in order, and the sequences of the
   * malformed dispatches sent to it (a handler may see those at most once, but need not).
   */
  const dispatched = new Map<string, { shardId: number; seqs: number[]; malformed: Set<number> }>();
  let malformedPayloads = 0;
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
          if (!entry) dispatched.set(sessionId, (entry = { shardId, seqs: [], malformed: new Set() }));
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
    const malformedRng = new SeededRandom(mixSeed(seed, 6));
    const slotMs = dispatchMs / Math.max(1, faultTotal);
    // Every kind once first (in a seeded order), so that even a short run covers them all; then at random.
    const kindOrder = [...CHAOS_FAULTS];
    for (let i = kindOrder.length - 1; i > 0; i--) {
      const j = faultRng.int(0, i);
      [kindOrder[i], kindOrder[j]] = [kindOrder[j], kindOrder[i]];
    }
    /** Sends one dispatch to the shard's session and files its sequence with the session's malformed ones. */
    const sendMalformed = (shardId: number, t: string, d: unknown): void => {
      const sessionId = gateway.sessionOf(shardId)!;
      const s = gateway.dispatch(shardId, t, d);
      let entry = dispatched.get(sessionId);
      if (!entry) dispatched.set(sessionId, (entry = { shardId, seqs: [], malformed: new Set() }));
      entry.malformed.add(s);
      malformedPayloads++;
    };
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
        case 'malformed-payloads': {
          const shapes: string[] = [];
          for (let n = faultRng.int(2, 5); n > 0; n--) {
            const malformed = createMalformedDispatch(malformedRng);
            sendMalformed(shardId, malformed.t, malformed.d);
            shapes.push(malformed.shape);
          }
          return shapes.join('; ');
        }
        case 'malformed-ready': {
          // The session ends (op 9 false); the READY of the next one lists guilds that are not guild objects.
          const guilds = faultRng.pick(MALFORMED_READY_GUILDS);
          gateway.malformNextReady(shardId, guilds);
          malformedPayloads++;
          gateway.invalidateSession(shardId, false);
          return `guilds ${JSON.stringify(guilds)}`;
        }
        case 'churn-after-ready':
          gateway.churnAfterReady(shardId, churnMs, 4000);
          return `${churnMs} ms`;
        default: {
          const code = Number(kind.slice('close-'.length));
          if (code === 4008) injectedRateLimitCloses.add(gateway.connectionOf(shardId)!.id);
          gateway.closeShard(shardId, code, 'chaos');
          return '';
        }
      }
    };

    /**
     * Waits until the shard left the ready state and came back after `notBefore`; or, when `absorbAfterMs` is
     * given, until it stayed ready that long (a fault it rode out without reconnecting).
     */
    const awaitRecovery = async (record: FaultRecord, mark: number, absorbAfterMs: number | null, notBefore: number): Promise<void> => {
      const entries = stateLog.get(record.shardId)!;
      const deadline = notBefore + recoveryTimeoutMs;
      while (Date.now() < deadline) {
        const since = entries.slice(mark);
        const left = since.findIndex((e) => e.state !== ShardState.Ready);
        if (left >= 0) {
          const back = since.slice(left).reverse().find((e) => e.state === ShardState.Ready);
          if (back && Date.now() >= notBefore && isReady(record.shardId)) {
            record.recovered = true;
            record.recoveryMs = Math.max(0, back.at - notBefore);
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

    const faultsOnShardInLastMinute = (shardId: number) => {
      const since = Date.now() - 60_000;
      return faults.filter((f) => f.shardId === shardId && f.at > since).length;
    };
    const faultLoop = (async () => {
      for (let i = 0; i < faultTotal; i++) {
        const slot = dispatchStart + (i + faultRng.float()) * slotMs;
        if (slot > Date.now()) await sleep(slot - Date.now());
        let eligible: number[] = [];
        for (let waitedForReady = 0; waitedForReady < 2_000; ) {
          const ready = Array.from({ length: shardCount }, (_, id) => id).filter(isReady);
          eligible = ready.filter((id) => faultsOnShardInLastMinute(id) < MAX_FAULTS_PER_SHARD_PER_MINUTE);
          if (eligible.length > 0) break;
          if (ready.length === 0) waitedForReady++;
          await sleep(5);
        }
        if (eligible.length === 0) {
          log(`chaos: no shard ready for fault ${i + 1}; stopping faults`);
          break;
        }
        const shardId = faultRng.pick(eligible);
        const kind = i < kindOrder.length ? kindOrder[i] : faultRng.pick(CHAOS_FAULTS);
        const session = gateway.sessionOf(shardId);
        if (session && SESSION_ENDING.has(kind)) endedByFault.set(session, kind);
        const mark = stateLog.get(shardId)!.length;
        const record: FaultRecord = { kind, shardId, at: Date.now(), detail: '', recovered: false, absorbed: false, recoveryMs: null };
        faults.push(record);
        try {
          record.detail = inject(kind, shardId);
          const absorbAfterMs =
            kind === 'slow-reads' ? Number(record.detail.split(' ')[0]) + heartbeat * 2 : kind === 'malformed-payloads' ? heartbeat * 2 : null;
          await awaitRecovery(record, mark, absorbAfterMs, kind === 'churn-after-ready' ? record.at + churnMs : record.at);
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
    let excusedLosses = 0;
    let excusedLossesAllowed = 0;
    const excusedByFault: Record<string, { excused: number; allowed: number }> = {};
    const details: string[] = [];
    for (const [sessionId, delivered] of recorder.bySession) {
      if (!dispatched.has(sessionId)) {
        unexpected += delivered.length;
        details.push(`session ${sessionId.slice(0, 8)}: ${delivered.length} deliveries for a session nothing was dispatched to`);
      }
    }
    /**
     * The last event of a session the gateway ended that must have been delivered: the newest one dispatched when
     * the gateway last wrote a heartbeat ACK to the session. When the session ended with a dropped TCP connection
     * (whose bytes in flight are lost with it), the sequence that the last acknowledged heartbeat carried: what the
     * client itself said it had.
     */
    const lastAcknowledged = (sessionId: string, fault: ChaosFault): number => {
      let ack = -Infinity;
      for (const c of gateway.connections) {
        if (c.sessionId !== sessionId) continue;
        const value = DROPS_CONNECTION.has(fault) ? c.lastAckedHeartbeat : c.lastAckSequence;
        if (value !== null) ack = Math.max(ack, value);
      }
      return ack;
    };
    for (const [sessionId, { shardId, seqs, malformed }] of dispatched) {
      const delivered = recorder.bySession.get(sessionId) ?? [];
      const wanted = new Set(seqs);
      const seen = new Set<number>();
      let previous = -Infinity;
      let highest = -Infinity;
      for (const s of delivered) {
        if (!wanted.has(s) && !malformed.has(s)) unexpected++;
        else if (seen.has(s)) duplicated++;
        if (s < previous) outOfOrder++;
        previous = s;
        seen.add(s);
        if (wanted.has(s)) highest = Math.max(highest, s);
      }
      const missing = seqs.filter((s) => !seen.has(s));
      const fault = endedByFault.get(sessionId);
      // The protocol lets a session the gateway ended lose only what was dispatched after its last heartbeat ACK;
      // and a gap before a later delivery is never excused.
      const ack = fault ? lastAcknowledged(sessionId, fault) : Infinity;
      const allowed = fault ? seqs.filter((s) => s > ack).length : 0;
      const excused = fault ? missing.filter((s) => s > ack && s > highest).length : 0;
      excusedLosses += excused;
      excusedLossesAllowed += allowed;
      if (fault) {
        const byFault = (excusedByFault[fault] ??= { excused: 0, allowed: 0 });
        byFault.excused += excused;
        byFault.allowed += allowed;
      }
      if (missing.length - excused > 0) {
        lost += missing.length - excused;
        const first = missing.find((s) => !fault || s <= ack || s <= highest);
        details.push(`shard ${shardId} session ${sessionId.slice(0, 8)}: ${missing.length - excused} lost (first #${first}${fault ? `, ended by ${fault}, last ACK at #${ack}` : ''})`);
      }
    }

    // The gateway stamps frames on arrival. This process hosts both ends: when it stalls, frames the client sent
    // apart arrive together. The client's own send times are matched to the gateway's connections by TCP port,
    // frame for frame (TCP keeps their order), so that the timing checks judge what the client did.
    const sendsByPort = new Map<number, ClientSends[]>();
    for (const sends of clientSends.values()) {
      if (sends.localPort !== null) sendsByPort.set(sends.localPort, [...(sendsByPort.get(sends.localPort) ?? []), sends]);
    }
    const clientSendsOf = (c: LocalGatewayConnection): number[] | null => {
      const sends = (sendsByPort.get(c.remotePort ?? -1) ?? []).find(
        (candidate) => candidate.times[0] >= c.openedAt - 5 && candidate.times[0] <= (c.closedAt ?? Infinity),
      );
      return sends && sends.times.length >= c.frames.length ? sends.times : null;
    };
    /** When the client sent a frame the gateway recorded (its arrival time when unknown). */
    const sentAt = (frame: RecordedFrame): number => {
      const c = gateway.connections[frame.connectionId - 1];
      return clientSendsOf(c)?.[c.frames.indexOf(frame)] ?? frame.at;
    };

    // ---- (b) IDENTIFY buckets and windows ----------------------------------------------------------------
    const identifies = gateway.framesOf(GatewayOpcodes.Identify);
    let identifyTimingViolations = 0;
    const lastByKey = new Map<number, number>();
    const identifySends = identifies.map((frame) => ({ frame, at: sentAt(frame) })).sort((a, b) => a.at - b.at);
    for (const { frame, at } of identifySends) {
      const key = (frame.shardId ?? 0) % maxConcurrency;
      const last = lastByKey.get(key);
      if (last !== undefined && at - last < identifyWindowMs) {
        identifyTimingViolations++;
        details.push(`IDENTIFY of shard ${frame.shardId} sent ${at - last} ms after the previous one of bucket ${key}`);
      }
      lastByKey.set(key, at);
    }
    if (gateway.identifyViolations > 0 && identifyTimingViolations === 0) {
      details.push(`${gateway.identifyViolations} IDENTIFYs refused by the gateway were sent at least ${identifyWindowMs} ms apart (arrived together: not counted)`);
    }

    // ---- (c) frames each client connection sent per sliding window, and the gateway's 4008 closes ------
    let windowsOverLimit = 0;
    let maxFramesInWindow = 0;
    let framesSent = 0;
    for (const { times } of clientSends.values()) {
      framesSent += times.length;
      let from = 0;
      let overSince = false;
      for (let to = 0; to < times.length; to++) {
        while (times[from] <= times[to] - commandWindowMs) from++;
        const inWindow = to - from + 1;
        maxFramesInWindow = Math.max(maxFramesInWindow, inWindow);
        if (inWindow > commandLimit && !overSince) windowsOverLimit++;
        overSince = inWindow > commandLimit;
      }
    }
    // Every 4008 the gateway closed with on its own counts, unless the frames it counted in its window were sent
    // over more than the window by the client's clock and only arrived together: the gateway did not read for a
    // while (slow reads, or a stall of this process).
    let serverRateLimitCloses = 0;
    for (const c of gateway.connections) {
      if (!c.closedByServer || c.closeCode !== 4008 || injectedRateLimitCloses.has(c.id)) continue;
      const n = c.frames.length;
      const counted = c.frames.slice(-(commandLimit + 1)).map((f) => f.at);
      const sent = clientSendsOf(c)?.slice(n - counted.length, n) ?? null;
      const sentOverMs = sent ? sent.at(-1)! - sent[0] : null;
      const bunched = sentOverMs !== null && sentOverMs >= commandWindowMs;
      if (!bunched) serverRateLimitCloses++;
      details.push(
        `connection ${c.id} (shard ${c.shardId}) closed with 4008: its last ${counted.length} frames arrived within ${counted.at(-1)! - counted[0]} ms, ` +
          (sentOverMs === null ? 'their send times are unknown' : `sent within ${sentOverMs} ms`) + (bunched ? ' (arrived together: not counted)' : ''),
      );
    }
    const rateLimitViolations = windowsOverLimit + serverRateLimitCloses;

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

    // ---- (f) reconnects per shard in any 60 s ----------------------------------------------------------
    let reconnects = 0;
    let maxReconnectsPerMinute = 0;
    let busiestShard = -1;
    for (const [shardId, entries] of stateLog) {
      const attempts = entries.filter((e) => e.state === ShardState.Connecting).map((e) => e.at);
      reconnects += attempts.length;
      let from = 0;
      for (let to = 0; to < attempts.length; to++) {
        while (attempts[from] <= attempts[to] - 60_000) from++;
        if (to - from + 1 > maxReconnectsPerMinute) {
          maxReconnectsPerMinute = to - from + 1;
          busiestShard = shardId;
        }
      }
    }

    const violations: string[] = [];
    const violationsByCheck: Partial<Record<ChaosCheck, string[]>> = {};
    const violation = (check: ChaosCheck, message: string) => {
      (violationsByCheck[check] ??= []).push(message);
      violations.push(message);
    };
    if (lost > 0) violation('lost', `${lost} events lost`);
    if (duplicated > 0) violation('duplicated', `${duplicated} events delivered twice`);
    if (outOfOrder > 0) violation('out-of-order', `${outOfOrder} events out of order`);
    if (unexpected > 0) violation('unexpected', `${unexpected} deliveries of events not dispatched to their session`);
    if (identifyTimingViolations > 0) {
      violation('identify', `${identifyTimingViolations} IDENTIFYs sent closer than ${identifyWindowMs} ms in one bucket (${gateway.identifyViolations} refused by the gateway)`);
    }
    if (windowsOverLimit > 0) violation('rate-limit', `${windowsOverLimit} windows over ${commandLimit} frames per ${commandWindowMs} ms`);
    if (serverRateLimitCloses > 0) violation('rate-limit', `${serverRateLimitCloses} connections closed by the gateway with 4008 (rate limited)`);
    if (maxReconnectsPerMinute > MAX_RECONNECTS_PER_MINUTE) {
      violation('reconnect-rate', `shard ${busiestShard} reconnected ${maxReconnectsPerMinute} times in 60 s (bound ${MAX_RECONNECTS_PER_MINUTE})`);
    }
    if (notRecovered > 0) violation('recovery', `${notRecovered} faults not recovered within ${recoveryTimeoutMs} ms`);
    if (shardsNotReadyAtEnd > 0) violation('recovery', `${shardsNotReadyAtEnd} shards not ready at the end`);
    if (uncaught.length > 0) violation('crash', `${uncaught.length} uncaught errors (each would end the process), first: ${uncaught[0]}`);
    if (faults.length < faultTotal) violation('incomplete', `only ${faults.length} of ${faultTotal} faults injected`);
    if (dispatchedCount < eventTotal) violation('incomplete', `only ${dispatchedCount} of ${eventTotal} events dispatched`);
    const failedChecks = CHAOS_CHECKS.filter((check) => violationsByCheck[check] !== undefined);

    const durationMs = Date.now() - started;
    const byFault = Object.entries(excusedByFault).map(([k, n]) => `${k} ${n.excused} of ${n.allowed}`).join(', ') || 'none';
    log(`chaos: ${dispatchedCount} events dispatched over ${dispatched.size} sessions, ${recorder.total} delivered, ${(durationMs / 1000).toFixed(1)} s`);
    log(`chaos: faults by kind: ${Object.entries(faultsByKind).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    log(`chaos: (a) lost ${lost}, duplicated ${duplicated}, out of order ${outOfOrder}, unexpected ${unexpected}; ` +
      `${gateway.duplicatesSent} duplicates injected (${duplicatesInjectedHandled} of handled events), ${malformedPayloads} malformed payloads`);
    log(`chaos: (a) excused losses ${excusedLosses} of ${excusedLossesAllowed} allowed (dispatched after the last heartbeat ACK) ` +
      `in ${endedByFault.size} sessions the gateway ended; by fault: ${byFault}`);
    log(`chaos: (b) ${identifies.length} IDENTIFYs, ${gateway.identifyViolations} refused by the gateway, ${identifyTimingViolations} sent closer than ${identifyWindowMs} ms in one bucket (max_concurrency ${maxConcurrency})`);
    log(`chaos: (c) ${framesSent} frames sent on ${clientSends.size} connections, at most ${maxFramesInWindow} in any ${commandWindowMs} ms window (limit ${commandLimit}), ${windowsOverLimit} over; ` +
      `${serverRateLimitCloses} 4008 closes not injected; ${commandsRejected} presence updates rejected`);
    log(`chaos: (d) ${faults.length - notRecovered} of ${faults.length} faults recovered (${absorbed} without reconnecting), ${shardsNotReadyAtEnd} shards not ready at the end`);
    log(`chaos: (e) recovery over ${recovery.count} reconnects: min ${recovery.min} ms, p50 ${recovery.p50} ms, p95 ${recovery.p95} ms, max ${recovery.max} ms`);
    log(`chaos: (f) ${reconnects} reconnects, at most ${maxReconnectsPerMinute} by one shard in 60 s (bound ${MAX_RECONNECTS_PER_MINUTE}); ` +
      `${gateway.churnKills} sessions closed right after READY/RESUMED; ${uncaught.length} uncaught errors`);
    for (const line of details.slice(0, 20)) log(`chaos: ${line}`);
    const problems = new Map<string, number>();
    for (const line of logger.problems) {
      const key = line.replace(/Shard \d+/g, 'Shard N').slice(0, 300);
      problems.set(key, (problems.get(key) ?? 0) + 1);
    }
    for (const [line, count] of [...problems].slice(0, 20)) log(`chaos: nest ${line}${count > 1 ? ` (x${count})` : ''}`);

    const pass = violations.length === 0;
    const summary =
      `chaos: ${dispatchedCount} events, ${faults.length} faults, ${lost} lost, ${duplicated} duplicated, ${outOfOrder} out of order, ` +
      `${excusedLosses} excused losses, ${identifyTimingViolations} identify violations, ` +
      `${rateLimitViolations} rate-limit violations, ${gateway.duplicatesSent} duplicates injected, ${malformedPayloads} malformed payloads, ` +
      `max reconnects per minute ${maxReconnectsPerMinute}, recovery p50 ${recovery.p50} ms p95 ${recovery.p95} ms max ${recovery.max} ms: ${pass ? 'PASS' : 'FAIL'}`;
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
      excusedLosses,
      excusedLossesAllowed,
      excusedByFault,
      invalidatedSessions: endedByFault.size,
      duplicatesInjected: gateway.duplicatesSent,
      duplicatesInjectedHandled,
      malformedPayloads,
      identifies: identifies.length,
      identifyViolations: gateway.identifyViolations,
      identifyTimingViolations,
      rateLimitViolations,
      maxFramesInWindow,
      framesSent,
      serverRateLimitCloses,
      reconnects,
      maxReconnectsPerMinute,
      uncaughtErrors: uncaught.length,
      notRecovered,
      shardsNotReadyAtEnd,
      absorbed,
      recovery,
      violations,
      failedChecks,
      violationsByCheck,
      pass,
      summary,
    };
  } finally {
    stopPressure = true;
    stopRecordingSends();
    if (app) await app.close();
    await gateway.close();
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
  }
}
