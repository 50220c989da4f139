import { inspect } from 'node:util';
// The gateway entry point alone: the full v10 index also loads every REST and payload module at run time.
import { GatewayDispatchEvents, GatewayOpcodes } from 'discord-api-types/gateway/v10';
import type {
  GatewayIdentify,
  GatewayReadyDispatchData,
  GatewayResume,
  GatewaySendPayload,
} from 'discord-api-types/v10';
import { BehaviorSubject, Subject, type Observable } from 'rxjs';
import WebSocket from 'ws';
import {
  GATEWAY_VERSION,
  MAX_OUTGOING_PAYLOAD_BYTES,
  MAX_SEQUENCE_JUMP,
  ShardCloseCode,
  USER_AGENT,
} from '../constants/gateway.constants';
import { GatewayFatalError } from '../errors/gateway-fatal.error';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import { ShardCommandError } from '../errors/shard-command.error';
import type { Clock, ClockTimer } from '../interfaces/clock.interface';
import type { IDecompressor } from '../interfaces/decompressor.interface';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';
import type { ForwardedDispatch } from '../interfaces/forwarded-dispatch.interface';
import type { IGatewayShard } from '../interfaces/gateway-shard.interface';
import type { HandshakeKind, ResolvedShardOptions, ShardOptions } from '../interfaces/shard-options.interface';
import type { ShardSession } from '../interfaces/shard-session.interface';
import { backoffDelay } from './backoff';
import { closeAction, fatalReason, type CloseAction } from './close-code-policy';
import { CommandRateLimiter } from './command-rate-limiter';
import { peekFrame } from './peek-frame';
import { LatencyTracker, type LatencyStats } from './latency-tracker';
import { resolveShardOptions } from './resolve-shard-options';
import { ShardCounters, type ReconnectReason } from './shard-counters';
import { ShardState } from './shard-state';
import { isTransportAllowed } from './transport-security';

/** Options of {@link Shard.close}. */
export interface ShardCloseOptions {
  /** Keep the session so that it can be resumed later. @defaultValue `false` */
  resumable?: boolean;
  /** Close code to send. @defaultValue `1000`, or `4200` when `resumable` */
  code?: number;
}

/** How the last connection of a shard ended. */
export interface ShardCloseInfo {
  /** WebSocket close code (1006 when there was no close frame). */
  code: number;
  /** Close reason sent by the server, if any. */
  reason: string;
}

/** Room left for user commands in the current connection's rate-limit window. */
export interface CommandBudget {
  /** Commands that may be sent right now. */
  remaining: number;
  /** Milliseconds until the oldest frame leaves the window. */
  refillInMs: number;
}

/** Everything observable about one shard at one moment. */
export interface ShardInfo {
  id: number;
  total: number;
  state: ShardState;
  latency: LatencyStats;
  sequence: number | null;
  sessionId: string | null;
  /** Reconnect attempts since a connection last stayed ready for `max(heartbeat interval, backoff.resetAfterMs)`. */
  reconnectAttempts: number;
  lastClose: ShardCloseInfo | null;
  lastError: string | null;
  commandBudget: CommandBudget;
  /** Reading is paused (backpressure). */
  paused: boolean;
  /** How long the current pause has lasted, ms (0 when not paused): how far event handling lags the socket. */
  lagMs: number;
  /** Time spent paused since the shard was created, ms. */
  totalPausedMs: number;
}

interface PendingCommand {
  data: string;
  resolve: () => void;
  reject: (error: Error) => void;
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

/** State that belongs to one WebSocket connection and dies with it. */
interface Connection {
  readonly ws: WebSocket;
  readonly viaResumeUrl: boolean;
  readonly decompressor: IDecompressor | null;
  readonly limiter: CommandRateLimiter;
  opened: boolean;
  helloReceived: boolean;
  handshakeSent: boolean;
  /** The handshake sent was an IDENTIFY (not a RESUME): only then may a READY start a new session. */
  identified: boolean;
  /** READY or RESUMED arrived on this connection. */
  sessionReady: boolean;
  /** `heartbeat_interval` from HELLO, ms (0 before HELLO). */
  heartbeatInterval: number;
  acked: boolean;
  /** A heartbeat the server asked for (op 1) went out and neither its ACK nor the next scheduled beat came yet. */
  requestedBeatInFlight: boolean;
  /** A heartbeat request was left unanswered for want of room in the send budget (said once per connection). */
  requestRefusalReported: boolean;
  /** Reading was paused at some point since the last scheduled heartbeat. */
  pausedSinceBeat: boolean;
  /** Payloads that arrived while reading was paused (ws still emits what it had read): handled on resume, in order. */
  held: (Buffer | string)[];
  beatSentAt: number | null;
  helloTimer: ClockTimer | null;
  readyTimer: ClockTimer | null;
  heartbeatTimer: ClockTimer | null;
  drainTimer: ClockTimer | null;
  /** Fires once the connection has stayed ready long enough to reset the backoff. */
  healthyTimer: ClockTimer | null;
  identifyAbort: AbortController | null;
}

const MANAGED_OPCODES = new Set<number>([GatewayOpcodes.Heartbeat, GatewayOpcodes.Identify, GatewayOpcodes.Resume]);

/**
 * One connection to Discord's gateway, kept alive across reconnects and resumes. Usable without Nest.
 *
 * ```ts
 * const shard = new Shard({ id: 0, total: 1, token, intents: GatewayIntentBits.Guilds });
 * shard.dispatch$.subscribe((event) => console.log(event.t));
 * await shard.connect();
 * ```
 */
export class Shard implements IGatewayShard {
  /** This shard's id. */
  readonly id: number;
  /** Number of shards the bot runs. */
  readonly total: number;

  readonly #token: string;
  private readonly options: ResolvedShardOptions;
  /** Time and timers of every protocol rule (heartbeats, handshake timeouts, backoff, windows). */
  private readonly clock: Clock;
  private readonly stateSubject = new BehaviorSubject<ShardState>(ShardState.Disconnected);
  private readonly dispatchSubject = new Subject<GatewayDispatch>();
  private readonly forwardedSubject = new Subject<ForwardedDispatch>();
  private readonly debugSubject = new Subject<string>();
  private readonly errorSubject = new Subject<Error>();
  private readonly latency = new LatencyTracker();
  private readonly commands: PendingCommand[] = [];
  private readonly readyWaiters: Waiter[] = [];

  private conn: Connection | null = null;
  private sessionData: { sessionId: string; resumeUrl: string } | null = null;
  private sequence: number | null = null;
  private attempts = 0;
  private stopped = true;
  private reconnectTimer: ClockTimer | null = null;
  /** Connections opened in the last `reconnectLimit.windowMs` (a sliding window of `reconnectLimit.max`). */
  private readonly connectionWindow: CommandRateLimiter;
  private lastCloseInfo: ShardCloseInfo | null = null;
  private lastErrorMessage: string | null = null;
  private fatal: GatewayFatalError | null = null;
  private pausedSince: number | null = null;
  private totalPausedMs = 0;

  /** Counters of received events, reconnects, IDENTIFYs, RESUMEs and payload bytes. */
  readonly counters = new ShardCounters();

  /** Every dispatch (op 0) event the dispatch filter wants (every one without a filter), in order, READY and RESUMED included. */
  readonly dispatch$: Observable<GatewayDispatch> = this.dispatchSubject.asObservable();
  /** The events the dispatch filter forwards (and does not want), as the payload bytes received, in order with `dispatch$`. */
  readonly forwarded$: Observable<ForwardedDispatch> = this.forwardedSubject.asObservable();
  /** State changes; emits the current state on subscription. */
  readonly state$: Observable<ShardState> = this.stateSubject.asObservable();
  /** Human-readable trace of what the shard does (without the shard id). Never contains the token. */
  readonly debug$: Observable<string> = this.debugSubject.asObservable();
  /** Errors the shard recovered from, and the fatal one it did not. */
  readonly error$: Observable<Error> = this.errorSubject.asObservable();

  /** @throws {@link GatewayOptionsError} naming the first invalid option. */
  constructor(options: ShardOptions) {
    this.options = resolveShardOptions(options);
    this.clock = this.options.clock;
    this.#token = options.token;
    this.id = this.options.id;
    this.total = this.options.total;
    const { max, windowMs } = this.options.reconnectLimit;
    this.connectionWindow = new CommandRateLimiter(max, windowMs, this.clock);
    const saved = this.options.session;
    if (saved) {
      this.sessionData = { sessionId: saved.sessionId, resumeUrl: saved.resumeUrl };
      this.sequence = saved.sequence;
    }
  }

  /** Current state. */
  get state(): ShardState {
    return this.stateSubject.value;
  }

  /** The session that a later connection would resume, or null. */
  get session(): ShardSession | null {
    if (!this.sessionData) return null;
    return { ...this.sessionData, sequence: this.sequence, shardCount: this.total };
  }

  /** Heartbeat round trips of the current connection. */
  get latencyStats(): LatencyStats {
    return this.latency.stats();
  }

  /** Commands waiting to be sent (shard not ready, or the rate limit has no room). */
  get pendingCommands(): number {
    return this.commands.length;
  }

  /** The error that closed the shard for good, if any. */
  get fatalError(): GatewayFatalError | null {
    return this.fatal;
  }

  /** A snapshot of the shard's state, latency, sequence and budgets. */
  info(): ShardInfo {
    return {
      id: this.id,
      total: this.total,
      state: this.state,
      latency: this.latency.stats(),
      sequence: this.sequence,
      sessionId: this.sessionData?.sessionId ?? null,
      reconnectAttempts: this.attempts,
      lastClose: this.lastCloseInfo,
      lastError: this.lastErrorMessage,
      commandBudget: this.commandBudget(),
      paused: this.pausedSince !== null,
      lagMs: this.pausedSince === null ? 0 : this.clock.now() - this.pausedSince,
      totalPausedMs: this.totalPausedMs + (this.pausedSince === null ? 0 : this.clock.now() - this.pausedSince),
    };
  }

  /** Room for user commands in the current rate-limit window. */
  commandBudget(): CommandBudget {
    const limiter = this.conn?.limiter;
    if (!limiter) {
      const { limit } = this.options.commandRateLimit;
      return { remaining: limit, refillInMs: 0 };
    }
    return { remaining: limiter.remaining(), refillInMs: limiter.msUntilRefill() };
  }

  /**
   * Opens the connection. Resolves once the shard is ready (READY or RESUMED); rejects with a
   * {@link GatewayFatalError} on a fatal close, or when `close()` is called first. Reconnects on its own after that.
   */
  connect(): Promise<void> {
    if (this.fatal) return Promise.reject(this.fatal);
    const ready = new Promise<void>((resolve, reject) => {
      if (this.state === ShardState.Ready) resolve();
      else this.readyWaiters.push({ resolve, reject });
    });
    if (this.stopped) {
      this.stopped = false;
      this.attempts = 0;
      this.openConnection();
    }
    return ready;
  }

  /**
   * Stops reading from the socket (backpressure) until {@link resume}. Heartbeats keep going out, and a missing
   * ACK is not taken for a zombie connection while reading is paused. Applies to later connections too.
   */
  pause(): void {
    if (this.pausedSince !== null) return;
    this.pausedSince = this.clock.now();
    if (this.conn) {
      this.conn.pausedSinceBeat = true;
      this.conn.ws.pause();
    }
    this.debug('reading paused (backpressure)');
  }

  /** Starts reading from the socket again after {@link pause}. */
  resume(): void {
    if (this.pausedSince === null) return;
    const pausedFor = this.clock.now() - this.pausedSince;
    this.totalPausedMs += pausedFor;
    this.pausedSince = null;
    this.debug(`reading resumed after ${pausedFor} ms`);
    const conn = this.conn;
    // Handling a held payload may pause again: the rest then waits for the next resume.
    while (conn && conn === this.conn && conn.held.length > 0 && this.pausedSince === null) this.onPayload(conn, conn.held.shift()!);
    if (conn && conn === this.conn && this.pausedSince === null) conn.ws.resume();
  }

  /**
   * Drops the current connection and opens a new one at once: it resumes when the shard has a session and
   * identifies otherwise. Resolves when the shard is ready again. On a stopped shard this is `connect()`.
   */
  restart(): Promise<void> {
    if (this.stopped) return this.connect();
    const ready = new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    this.attempts = 0;
    const conn = this.conn;
    if (conn) {
      this.reconnect(conn, 'restart requested', 'resume', 'restart');
    } else {
      this.clearReconnectTimer();
      this.openConnection();
    }
    return ready;
  }

  /**
   * Closes the connection. With code 1000 (the default) the session ends and the bot shows offline.
   * With `resumable: true` the shard closes with 4200 and returns the session to resume later.
   * Commands still waiting are rejected.
   */
  async close(options: ShardCloseOptions = {}): Promise<ShardSession | null> {
    const resumable = options.resumable ?? false;
    const code = options.code ?? (resumable ? ShardCloseCode.Resuming : ShardCloseCode.Normal);
    if (resumable && (code === 1000 || code === 1001)) {
      throw new GatewayOptionsError('code', 'a resumable close must not use 1000 or 1001, which end the session');
    }
    this.stopped = true;
    this.clearReconnectTimer();
    const conn = this.conn;
    if (conn) {
      this.conn = null;
      this.teardown(conn);
      this.debug(`closing with code ${code}${resumable ? ' (resumable)' : ''}`);
      await closeGracefully(conn.ws, code, this.options.closeTimeout);
    }
    if (this.state !== ShardState.FatallyClosed) this.setState(ShardState.Disconnected);
    this.rejectAll(new ShardCommandError(this.id, 'the shard was closed before this could complete'));
    if (!resumable || code === 1000 || code === 1001) {
      this.sessionData = null;
      this.sequence = null;
      return null;
    }
    return this.session;
  }

  /**
   * Sends a gateway command. Waits, in order, until the shard is ready and the rate limit has room.
   * Rejects with a {@link ShardCommandError} when the payload is malformed or over 4096 bytes (it is never sent),
   * or when the shard is closed first.
   */
  send(command: GatewaySendPayload): Promise<void> {
    const op = (command as { op?: unknown } | null)?.op;
    if (typeof command !== 'object' || command === null || typeof op !== 'number' || !Number.isInteger(op)) {
      return Promise.reject(new ShardCommandError(this.id, 'a command must be an object with an integer "op"'));
    }
    if (MANAGED_OPCODES.has(op)) {
      return Promise.reject(new ShardCommandError(this.id, `op ${op} is sent by the shard itself and cannot be sent by hand`));
    }
    let data: string;
    try {
      data = JSON.stringify(command);
    } catch (error) {
      return Promise.reject(new ShardCommandError(this.id, `op ${op} could not be serialised: ${(error as Error).message}`));
    }
    const bytes = Buffer.byteLength(data);
    if (bytes > MAX_OUTGOING_PAYLOAD_BYTES) {
      return Promise.reject(
        new ShardCommandError(this.id, `op ${op} is ${bytes} bytes, over Discord's ${MAX_OUTGOING_PAYLOAD_BYTES}-byte limit; it was not sent`),
      );
    }
    if (this.fatal) return Promise.reject(this.fatal);
    return new Promise<void>((resolve, reject) => {
      this.commands.push({ data, resolve, reject });
      this.drain();
    });
  }

  /** Hides the token and internals from `util.inspect` and `console.log`. */
  [inspect.custom](): string {
    return `Shard { id: ${this.id}, total: ${this.total}, state: '${this.state}', sequence: ${this.sequence} }`;
  }

  /** Same as the inspect output, so `JSON.stringify` cannot leak the token either. */
  toJSON(): { id: number; total: number; state: ShardState; sequence: number | null } {
    return { id: this.id, total: this.total, state: this.state, sequence: this.sequence };
  }

  // ---- connection lifecycle -------------------------------------------------------------------------

  private openConnection(): void {
    this.connectionWindow.record();
    const viaResumeUrl = this.sessionData !== null;
    const url = this.buildUrl(viaResumeUrl ? this.sessionData!.resumeUrl : this.options.gatewayUrl);
    this.setState(ShardState.Connecting);
    this.debug(`connecting to ${url}${viaResumeUrl ? ' to resume' : ''}`);
    const ws = new WebSocket(url, {
      handshakeTimeout: this.options.handshakeTimeout,
      maxPayload: this.options.maxMessageBytes,
      perMessageDeflate: false,
      headers: { 'User-Agent': USER_AGENT },
    });
    const compression = this.options.compression;
    const conn: Connection = {
      ws,
      viaResumeUrl,
      decompressor: null,
      limiter: new CommandRateLimiter(this.options.commandRateLimit.limit, windowWithMargin(this.options.commandRateLimit.windowMs), this.clock),
      opened: false,
      helloReceived: false,
      handshakeSent: false,
      identified: false,
      sessionReady: false,
      heartbeatInterval: 0,
      acked: true,
      requestedBeatInFlight: false,
      requestRefusalReported: false,
      pausedSinceBeat: false,
      held: [],
      beatSentAt: null,
      helloTimer: null,
      readyTimer: null,
      heartbeatTimer: null,
      drainTimer: null,
      healthyTimer: null,
      identifyAbort: null,
    };
    if (compression) {
      (conn as { decompressor: IDecompressor }).decompressor = compression.create(
        (payload) => this.onPayload(conn, payload),
        (error) => this.protocolError(conn, `decompression failed: ${error.message}`),
        { maxMessageBytes: this.options.maxMessageBytes },
        {
          pause: () => ws.pause(),
          resume: () => {
            if (conn === this.conn && this.pausedSince === null) ws.resume();
          },
        },
      );
    }
    this.conn = conn;
    ws.on('open', () => {
      conn.opened = true;
      if (this.pausedSince !== null) ws.pause();
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (conn !== this.conn) return;
      this.counters.receivedBytes += data.length;
      if (isBinary && conn.decompressor) conn.decompressor.push(data);
      else this.onPayload(conn, data);
    });
    ws.on('close', (code: number, reason: Buffer) => this.onSocketClose(conn, code, reason.toString()));
    ws.on('error', (error: Error) => {
      if (conn !== this.conn) return;
      this.debug(`socket error: ${error.message}`);
      if (!conn.opened) this.lastErrorMessage = `could not connect to ${url}: ${error.message}`;
    });
    conn.helloTimer = this.clock.setTimeout(() => {
      this.reconnect(conn, `no HELLO within ${this.options.helloTimeout} ms`, 'resume', 'hello-timeout');
    }, this.options.helloTimeout);
  }

  private buildUrl(base: string): string {
    let url: URL;
    try {
      url = new URL(base);
      if ((url.protocol !== 'ws:' && url.protocol !== 'wss:') || !isTransportAllowed(url, this.options.allowInsecureGateway)) {
        throw new Error('refused');
      }
    } catch {
      this.debug('the resume URL is not a secure WebSocket URL: using the gateway URL');
      url = new URL(this.options.gatewayUrl);
    }
    url.search = '';
    url.searchParams.set('v', String(GATEWAY_VERSION));
    url.searchParams.set('encoding', 'json');
    if (this.options.compression && !this.options.compression.payload) url.searchParams.set('compress', this.options.compression.query);
    return url.toString();
  }

  private onSocketClose(conn: Connection, code: number, reason: string): void {
    if (conn !== this.conn) return;
    this.lastCloseInfo = { code, reason };
    this.teardown(conn);
    this.conn = null;
    let action = closeAction(code);
    this.debug(`connection closed with ${code}${reason ? ` (${reason})` : ''}: ${action}`);
    if (action === 'resume' && conn.viaResumeUrl && !conn.opened) {
      this.debug('the resume URL could not be reached: identifying on the gateway URL');
      action = 'identify';
    }
    if (action !== 'fatal' && !this.stopped) this.counters.countReconnect(`close-${code}`);
    this.afterDisconnect(action, code);
  }

  /** Drops the connection (without waiting for a close echo) and reconnects as `action` says. */
  private reconnect(conn: Connection, why: string, action: CloseAction, reason: ReconnectReason, extraDelayMs = 0): void {
    if (conn !== this.conn) return;
    this.debug(`reconnecting: ${why}`);
    this.counters.countReconnect(reason);
    this.conn = null;
    this.teardown(conn);
    dropSocket(conn.ws, ShardCloseCode.Resuming);
    this.afterDisconnect(action, undefined, extraDelayMs);
  }

  private protocolError(conn: Connection, message: string): void {
    if (conn !== this.conn) return;
    this.lastErrorMessage = message;
    this.errorSubject.next(new Error(`Shard ${this.id}: ${message}`));
    this.reconnect(conn, message, 'resume', 'decode-error');
  }

  private afterDisconnect(action: CloseAction, code?: number, extraDelayMs = 0): void {
    if (this.stopped) {
      this.setState(ShardState.Disconnected);
      return;
    }
    if (action === 'fatal') {
      this.failFatally(code ?? 0);
      return;
    }
    if (action === 'identify') this.dropSession();
    const backoff = backoffDelay(this.attempts, this.options.backoff, this.options.random) + extraDelayMs;
    // The connection window has room once its oldest entry leaves it.
    const windowWait = this.connectionWindow.remaining() > 0 ? 0 : this.connectionWindow.msUntilRefill();
    const delay = Math.max(backoff, windowWait);
    this.attempts++;
    this.setState(ShardState.Disconnected);
    const capped = windowWait > backoff ? ` (at most ${this.options.reconnectLimit.max} connections per ${this.options.reconnectLimit.windowMs} ms)` : '';
    this.debug(`reconnect attempt ${this.attempts} in ${delay} ms${capped}`);
    this.clearReconnectTimer();
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) this.openConnection();
    }, delay);
  }

  private failFatally(code: number, reason = fatalReason(code)): void {
    this.stopped = true;
    this.dropSession();
    this.fatal = new GatewayFatalError(this.id, code, reason);
    this.lastErrorMessage = this.fatal.message;
    this.setState(ShardState.FatallyClosed);
    this.errorSubject.next(this.fatal);
    this.rejectAll(this.fatal);
  }

  private dropSession(): void {
    this.sessionData = null;
    this.sequence = null;
  }

  private teardown(conn: Connection): void {
    // The heartbeat timer is a timeout before the first beat and an interval after it: clearTimeout cancels either.
    for (const timer of [conn.helloTimer, conn.readyTimer, conn.drainTimer, conn.healthyTimer, conn.heartbeatTimer]) if (timer) this.clock.clearTimeout(timer);
    conn.helloTimer = conn.readyTimer = conn.drainTimer = conn.heartbeatTimer = conn.healthyTimer = null;
    conn.identifyAbort?.abort();
    conn.decompressor?.close();
  }

  private clearReconnectTimer(): void {
    if (this.reconnectTimer) this.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  // ---- inbound ------------------------------------------------------------------------------------

  private onPayload(conn: Connection, raw: Buffer | string): void {
    if (conn !== this.conn) return;
    if (this.pausedSince !== null) {
      // A decompressor may reuse its buffer once this returns: keep a copy.
      conn.held.push(typeof raw === 'string' ? raw : Buffer.from(raw));
      return;
    }
    this.counters.payloadBytes += raw.length;
    const filter = this.options.dispatchFilter;
    if (filter && !filter.decodesAll) {
      // Events nobody wants: read only the name and sequence number from the first bytes, never the data.
      const envelope = peekFrame(raw);
      if (envelope && envelope.op === GatewayOpcodes.Dispatch && envelope.t !== null && !filter.wants(envelope.t)) {
        const { t, s } = envelope;
        if (s !== null && Number.isSafeInteger(s) && this.acceptSequence(conn, t, s) && filter.forwards(t)) {
          // Passed on as bytes, never parsed here: whoever reads it (a worker app) decodes it. A copy: a decompressor
          // may reuse its buffer once this returns.
          const frame = Buffer.from(raw);
          this.forwardedSubject.next({ shardId: this.id, t, s, sessionId: this.sessionData?.sessionId, frame });
        }
        return;
      }
    }
    let packet: { op?: unknown; d?: any; s?: unknown; t?: unknown };
    try {
      packet = JSON.parse(typeof raw === 'string' ? raw : raw.toString());
    } catch {
      this.protocolError(conn, 'received a payload that is not valid JSON');
      return;
    }
    if (typeof packet !== 'object' || packet === null || typeof packet.op !== 'number') {
      this.debug('ignored a payload without a numeric op');
      return;
    }
    switch (packet.op) {
      case GatewayOpcodes.Dispatch:
        this.onDispatch(conn, packet.t, packet.s, packet.d);
        break;
      case GatewayOpcodes.Heartbeat:
        this.onHeartbeatRequest(conn);
        break;
      case GatewayOpcodes.Reconnect:
        this.reconnect(conn, 'the gateway asked for a reconnect (op 7)', 'resume', 'reconnect-request');
        break;
      case GatewayOpcodes.InvalidSession: {
        if (packet.d === true) {
          this.reconnect(conn, 'invalid session, resumable (op 9)', 'resume', 'invalid-session');
        } else {
          const { minMs, maxMs } = this.options.invalidSessionDelay;
          const wait = Math.round(minMs + this.options.random() * (maxMs - minMs));
          this.reconnect(conn, `invalid session (op 9): identifying again after ${wait} ms`, 'identify', 'invalid-session', wait);
        }
        break;
      }
      case GatewayOpcodes.Hello:
        this.onHello(conn, packet.d?.heartbeat_interval);
        break;
      case GatewayOpcodes.HeartbeatAck:
        this.onHeartbeatAck(conn);
        break;
      default:
        this.debug(`ignored unknown opcode ${packet.op}`);
    }
  }

  private onHello(conn: Connection, interval: unknown): void {
    if (typeof interval !== 'number' || !Number.isFinite(interval)) {
      this.protocolError(conn, 'HELLO carried no valid heartbeat_interval');
      return;
    }
    if (conn.helloReceived) {
      this.debug('ignored a second HELLO');
      return;
    }
    const { minMs, maxMs } = this.options.heartbeatIntervalRange;
    if (interval < minMs || interval > maxMs) {
      this.protocolError(conn, `HELLO heartbeat_interval ${interval} ms is outside ${minMs}..${maxMs} ms (heartbeatIntervalRange)`);
      return;
    }
    conn.helloReceived = true;
    conn.heartbeatInterval = interval;
    if (conn.helloTimer) this.clock.clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    this.latency.reset();
    conn.limiter.reserveForHeartbeats(interval);
    const noRoom = conn.limiter.heartbeatConflict(interval, this.options.commandRateLimit);
    if (noRoom) {
      this.conn = null;
      this.teardown(conn);
      dropSocket(conn.ws, 1000);
      this.failFatally(1000, noRoom);
      return;
    }
    const firstBeatIn = Math.floor(interval * this.options.random());
    this.debug(`HELLO: heartbeat every ${interval} ms, first in ${firstBeatIn} ms`);
    conn.heartbeatTimer = this.clock.setTimeout(() => {
      if (!this.beat(conn)) return;
      conn.heartbeatTimer = this.clock.setInterval(() => this.beat(conn), interval);
    }, firstBeatIn);
    if (this.sessionData) void this.sendResume(conn);
    else void this.identify(conn);
  }

  /** One scheduled heartbeat; returns false when the connection turned out to be a zombie. */
  private beat(conn: Connection): boolean {
    if (conn !== this.conn) return false;
    // While reading is paused, ACKs wait unread in the socket: only a missing ACK while reading counts.
    if (!conn.acked && this.pausedSince === null && !conn.pausedSinceBeat) {
      this.lastErrorMessage = 'no heartbeat ACK before the next heartbeat (zombie connection)';
      this.reconnect(conn, this.lastErrorMessage, 'resume', 'zombie');
      return false;
    }
    conn.acked = false;
    conn.pausedSinceBeat = this.pausedSince !== null;
    conn.requestedBeatInFlight = false;
    conn.beatSentAt = this.clock.now();
    this.sendFrame(conn, { op: GatewayOpcodes.Heartbeat, d: this.sequence });
    return true;
  }

  /**
   * Op 1: answers at once with a heartbeat, but only one at a time (until its ACK or the next scheduled beat) and
   * only when the send budget has room, like any other frame; the scheduled beats go on either way.
   */
  private onHeartbeatRequest(conn: Connection): void {
    if (conn.requestedBeatInFlight) return;
    if (!conn.limiter.tryTake()) {
      if (!conn.requestRefusalReported) {
        conn.requestRefusalReported = true;
        this.debug('ignored heartbeat requests (op 1) while the send budget has no room: the scheduled heartbeats answer them');
      }
      return;
    }
    conn.requestedBeatInFlight = true;
    this.writeFrame(conn, { op: GatewayOpcodes.Heartbeat, d: this.sequence });
  }

  private onHeartbeatAck(conn: Connection): void {
    conn.acked = true;
    conn.requestedBeatInFlight = false;
    if (conn.beatSentAt !== null) {
      this.latency.record(this.clock.now() - conn.beatSentAt);
      conn.beatSentAt = null;
    }
  }

  private async identify(conn: Connection): Promise<void> {
    this.setState(ShardState.Identifying);
    // Guard first, then the grant: IDENTIFY goes out as soon as the queue grants it, so the window starts there.
    if (this.options.handshakeGuard && !(await this.passesHandshakeGuard(conn, 'identify'))) return;
    if (conn !== this.conn || conn.handshakeSent) return;
    const abort = new AbortController();
    conn.identifyAbort = abort;
    try {
      await this.options.identifyQueue.acquire(this.id, abort.signal);
    } catch (error) {
      if (conn === this.conn && !abort.signal.aborted) {
        this.protocolError(conn, `the identify queue failed: ${(error as Error).message}`);
      }
      return;
    } finally {
      conn.identifyAbort = null;
    }
    if (conn !== this.conn || conn.handshakeSent) {
      this.identifyNotSent();
      return;
    }
    const payload: GatewayIdentify = {
      op: GatewayOpcodes.Identify,
      d: {
        token: this.#token,
        intents: this.options.intents,
        properties: this.options.identifyProperties,
        shard: [this.id, this.total],
        large_threshold: this.options.largeThreshold,
        ...(this.options.compression && this.options.compression.payload ? { compress: true } : {}),
        ...(this.options.presence ? { presence: this.options.presence } : {}),
      },
    };
    this.debug(`identifying as shard [${this.id}, ${this.total}]`);
    if (!this.sendFrame(conn, payload)) {
      this.identifyNotSent();
      return;
    }
    conn.handshakeSent = true;
    conn.identified = true;
    this.counters.identifies++;
    this.sequence = null;
    this.options.identifyQueue.identified?.(this.id);
    this.armReadyTimer(conn);
  }

  /** The queue granted an IDENTIFY that was never written (the connection closed first): give the grant back. */
  private identifyNotSent(): void {
    this.debug('IDENTIFY was not sent (the connection closed first): its session start goes back to the identify queue');
    this.options.identifyQueue.refund?.(this.id);
  }

  private async sendResume(conn: Connection): Promise<void> {
    if (conn.handshakeSent || !this.sessionData) return;
    if (this.options.handshakeGuard) {
      this.setState(ShardState.Resuming);
      if (!(await this.passesHandshakeGuard(conn, 'resume')) || conn.handshakeSent || !this.sessionData) return;
    }
    conn.handshakeSent = true;
    this.counters.resumes++;
    this.setState(ShardState.Resuming);
    const payload: GatewayResume = {
      op: GatewayOpcodes.Resume,
      d: { token: this.#token, session_id: this.sessionData.sessionId, seq: this.sequence ?? 0 },
    };
    this.debug(`resuming session at sequence ${this.sequence}`);
    this.sendFrame(conn, payload);
    this.armReadyTimer(conn);
  }

  /**
   * Asks `handshakeGuard` whether `conn` may send its IDENTIFY or RESUME. On a refusal or an error the shard closes
   * resumably and stops, keeping its session. False when the handshake must not be sent.
   */
  private async passesHandshakeGuard(conn: Connection, kind: HandshakeKind): Promise<boolean> {
    let allowed = false;
    try {
      allowed = (await this.options.handshakeGuard!(kind)) === true;
    } catch (error) {
      this.debug(`the handshake guard failed before ${kind}: ${(error as Error).message}`);
    }
    if (conn !== this.conn) return false;
    if (allowed) return true;
    this.debug(`the handshake guard refused to ${kind}: closing resumably and stopping`);
    this.rejectAll(new ShardCommandError(this.id, `the handshake guard refused to ${kind}`));
    this.close({ resumable: true }).catch(() => undefined);
    return false;
  }

  private armReadyTimer(conn: Connection): void {
    conn.readyTimer = this.clock.setTimeout(() => {
      const action: CloseAction = this.sessionData ? 'resume' : 'identify';
      this.reconnect(conn, `no READY or RESUMED within ${this.options.readyTimeout} ms`, action, 'ready-timeout');
    }, this.options.readyTimeout);
  }

  private onDispatch(conn: Connection, t: unknown, s: unknown, d: any): void {
    if (typeof t !== 'string' || typeof s !== 'number' || !Number.isSafeInteger(s)) {
      this.debug('ignored a dispatch without a string t and an integer s');
      return;
    }
    if (t === GatewayDispatchEvents.Ready && (!conn.identified || conn.sessionReady)) {
      // Only the answer to this connection's IDENTIFY starts a session. Any other READY is a replay: it changes
      // neither the session nor the sequence (so nothing is delivered twice), and is not delivered itself.
      if (this.acceptSequence(conn, t, s)) this.debug(`ignored READY #${s}: it answers no IDENTIFY on this connection`);
      return;
    }
    if (t === GatewayDispatchEvents.Ready) {
      const ready = d as Partial<GatewayReadyDispatchData> | null;
      if (typeof ready?.session_id !== 'string' || typeof ready.resume_gateway_url !== 'string') {
        this.protocolError(conn, 'READY carried no session_id or resume_gateway_url');
        return;
      }
      this.sessionData = { sessionId: ready.session_id, resumeUrl: ready.resume_gateway_url };
      // A new session numbers its events afresh.
      this.sequence = null;
    }
    if (!this.acceptSequence(conn, t, s)) return;
    this.dispatchSubject.next({ shardId: this.id, t, s, d, sessionId: this.sessionData?.sessionId });
    if (t === GatewayDispatchEvents.Ready || t === GatewayDispatchEvents.Resumed) this.onSessionReady(conn, t);
  }

  /**
   * Advances the sequence to `s` and counts event `t`. False (and nothing changes) for an event already received,
   * which a replay can send again: each sequence number of a session is handled once. A step forward of more than
   * {@link MAX_SEQUENCE_JUMP} from the last number is a protocol error: the connection is dropped and the session
   * resumed from the last good number. (A session's first number, with none before it, is taken as it comes.)
   */
  private acceptSequence(conn: Connection, t: string, s: number): boolean {
    if (this.sequence !== null && s <= this.sequence) {
      this.debug(`dropped ${t} #${s}: already received`);
      return false;
    }
    if (this.sequence !== null && s - this.sequence > MAX_SEQUENCE_JUMP) {
      this.protocolError(conn, `${t} #${s} jumps more than ${MAX_SEQUENCE_JUMP} past sequence ${this.sequence}`);
      return false;
    }
    this.sequence = s;
    this.counters.countEvent(t);
    return true;
  }

  private onSessionReady(conn: Connection, t: string): void {
    if (conn !== this.conn || conn.sessionReady) return;
    conn.sessionReady = true;
    if (conn.readyTimer) this.clock.clearTimeout(conn.readyTimer);
    conn.readyTimer = null;
    if (this.attempts > 0) {
      // The backoff starts over only once this connection has proved healthy, not on READY or RESUMED alone.
      const healthyAfter = Math.max(conn.heartbeatInterval, this.options.backoff.resetAfterMs);
      conn.healthyTimer = this.clock.setTimeout(() => {
        conn.healthyTimer = null;
        if (conn !== this.conn) return;
        this.attempts = 0;
        this.debug(`connection healthy for ${healthyAfter} ms: the reconnect backoff starts over`);
      }, healthyAfter);
    }
    this.debug(`${t}: session ${this.sessionData?.sessionId} at sequence ${this.sequence}`);
    this.setState(ShardState.Ready);
    for (const waiter of this.readyWaiters.splice(0)) waiter.resolve();
    this.drain();
  }

  // ---- outbound -----------------------------------------------------------------------------------

  /**
   * Sends a frame the shard manages; scheduled heartbeats use the limiter's reserved share, anything else is
   * counted. False (nothing written, nothing counted) when the socket is not open.
   */
  private sendFrame(conn: Connection, payload: { op: number; d?: unknown }): boolean {
    if (conn.ws.readyState !== WebSocket.OPEN) return false;
    if (payload.op !== GatewayOpcodes.Heartbeat) conn.limiter.record();
    return this.writeFrame(conn, payload);
  }

  /** Writes a frame whose room in the send budget is already accounted for; false when the socket is not open. */
  private writeFrame(conn: Connection, payload: { op: number; d?: unknown }): boolean {
    if (conn.ws.readyState !== WebSocket.OPEN) return false;
    conn.ws.send(JSON.stringify(payload));
    return true;
  }

  private drain(): void {
    const conn = this.conn;
    if (!conn || this.state !== ShardState.Ready || conn.drainTimer) return;
    let requeueAt = 0;
    while (this.commands.length > 0) {
      if (!conn.limiter.tryTake()) {
        conn.drainTimer = this.clock.setTimeout(() => {
          conn.drainTimer = null;
          if (conn === this.conn) this.drain();
        }, conn.limiter.msUntilRefill() + 1);
        return;
      }
      const command = this.commands.shift()!;
      this.counters.commandsSent++;
      conn.ws.send(command.data, (error) => {
        if (!error) {
          command.resolve();
          return;
        }
        // The connection broke under this write: keep the command, in order, for the next connection.
        this.commands.splice(requeueAt++, 0, command);
      });
    }
  }

  private rejectAll(error: Error): void {
    for (const command of this.commands.splice(0)) command.reject(error);
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(error);
  }

  // ---- helpers ------------------------------------------------------------------------------------

  private setState(state: ShardState): void {
    if (this.stateSubject.value !== state) this.stateSubject.next(state);
  }

  private debug(message: string): void {
    if (this.debugSubject.observed) this.debugSubject.next(message);
  }
}

/**
 * The command window the shard enforces: Discord's plus a margin (2 %, from 50 ms to 1 s), since the server counts
 * frames by arrival and arrivals can bunch up.
 */
function windowWithMargin(windowMs: number): number {
  return windowMs + Math.min(1_000, Math.max(50, Math.ceil(windowMs * 0.02)));
}

/** Sends a close frame when possible and destroys the socket at once, without waiting for the echo. */
function dropSocket(ws: WebSocket, code: number): void {
  try {
    if (ws.readyState === WebSocket.OPEN) ws.close(code);
  } finally {
    ws.terminate();
  }
}

/** Closes with `code` and waits for the server's close frame, up to `timeoutMs`. */
function closeGracefully(ws: WebSocket, code: number, timeoutMs: number): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  if (ws.readyState !== WebSocket.OPEN) {
    ws.terminate();
    return Promise.resolve();
  }
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      ws.terminate();
      resolve();
    }, timeoutMs);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.close(code);
  });
}
