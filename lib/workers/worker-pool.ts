import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { GatewaySendPayload } from 'discord-api-types/v10';
import { BehaviorSubject, Subject, type Observable } from 'rxjs';
import { GatewayFatalError } from '../core/errors/gateway-fatal.error';
import { ShardCommandError } from '../core/errors/shard-command.error';
import type { WorkerStrategy } from '../core/interfaces/cluster-options.interface';
import type { ForwardedDispatch } from '../core/interfaces/forwarded-dispatch.interface';
import type { GatewayDispatch } from '../core/interfaces/gateway-dispatch.interface';
import type { IGatewayShard } from '../core/interfaces/gateway-shard.interface';
import type { IIdentifyQueue } from '../core/interfaces/identify-queue.interface';
import type { IShardingStrategy } from '../core/interfaces/sharding-strategy.interface';
import type { HandshakeKind, ShardOptions } from '../core/interfaces/shard-options.interface';
import type { ShardSession } from '../core/interfaces/shard-session.interface';
import type { DispatchFilter } from '../core/shard/dispatch-filter';
import type { LatencyStats } from '../core/shard/latency-tracker';
import type { CommandBudget, ShardCloseOptions, ShardInfo } from '../core/shard/shard';
import { ShardCounters } from '../core/shard/shard-counters';
import { ShardState } from '../core/shard/shard-state';
import { redactToken, type FromWorker, type ShardCountersData, type ShardWorkerData, type ToWorker } from './worker-messages';

/** Options of a {@link WorkerPool}. */
export interface WorkerPoolOptions {
  strategy: WorkerStrategy;
  /** The cluster's options (the shard options are taken from them). */
  clusterOptions: object;
  filter: DispatchFilter | undefined;
  /** Errors of the pool itself (a worker exited, hung...). */
  onError: (error: Error) => void;
  onDebug: (message: string) => void;
  /** A dispatch whose data could not cross from its worker (it is not delivered). */
  onUnreadable: (event: GatewayDispatch, problem: string) => void;
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout | null;
}

interface Slot {
  index: number;
  worker: Worker | null;
  shards: Map<number, WorkerShard>;
  pending: Map<number, Pending>;
  acquires: Map<number, AbortController>;
  pingTimer: NodeJS.Timeout | null;
  restarts: number;
}

/** Options that never go to a worker: they are main-thread objects, or handled by the main thread. */
const MAIN_ONLY = new Set([
  'token', 'strategy', 'identifyQueue', 'identifyQueueFactory', 'sessionStore', 'gatewayInfo', 'dispatchFilter',
  'handshakeGuard', 'session', 'id', 'total', 'gatewayUrl', 'redis',
]);

/** True for values a worker can receive as they are: primitives and plain objects/arrays of them. */
function isPlain(value: unknown, depth = 0): boolean {
  if (value === null || ['string', 'number', 'boolean', 'undefined'].includes(typeof value)) return true;
  if (typeof value !== 'object' || depth > 4) return false;
  if (Array.isArray(value)) return value.every((v) => isPlain(v, depth + 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(value as object).every((v) => isPlain(v, depth + 1));
}

/** Absolute path of the package's shard worker entry (the module a `workerEntry` of your own requires). */
export function shardWorkerEntry(): string {
  return join(__dirname, `shard-worker${extname(__filename)}`);
}

/** The module a worker runs: the given one, or the package's; a .ts file runs under ts-node. */
function workerEntry(given: string | undefined): { file: string; execArgv: string[] | undefined } {
  const file = given ?? shardWorkerEntry();
  return { file, execArgv: extname(file) === '.ts' ? ['--require', 'ts-node/register/transpile-only'] : undefined };
}

/**
 * The worker-thread {@link IShardingStrategy}: runs shards in worker threads, `shardsPerWorker` to a thread (shard
 * `id` goes to worker `floor(id / shardsPerWorker)`), and supervises them: a worker that exits, or does not answer
 * a ping in time, is replaced and its shards resume the sessions it last reported.
 */
export class WorkerPool implements IShardingStrategy {
  readonly #token: string;
  private readonly slots = new Map<number, Slot>();
  private readonly shardsPerWorker: number;
  private readonly pingIntervalMs: number;
  private readonly pingTimeoutMs: number;
  private readonly shardOptions: Record<string, unknown>;
  private total = 0;
  private gatewayUrl = '';
  private nextId = 1;
  private stopped = false;
  private filterHook: (() => void) | null = null;

  constructor(
    token: string,
    private readonly options: WorkerPoolOptions,
  ) {
    this.#token = token;
    this.shardsPerWorker = options.strategy.shardsPerWorker ?? 1;
    this.pingIntervalMs = options.strategy.pingIntervalMs ?? 5_000;
    this.pingTimeoutMs = options.strategy.pingTimeoutMs ?? 10_000;
    this.shardOptions = {};
    for (const [key, value] of Object.entries(options.clusterOptions)) {
      if (!MAIN_ONLY.has(key) && isPlain(value)) this.shardOptions[key] = value;
    }
    this.filterHook = options.filter?.onChange(() => this.broadcast({ type: 'filter', wanted: this.wanted(), forwarded: this.forwarded() })) ?? null;
  }

  /** Creates the main-thread side of a shard that runs in its worker (started by its `connect()`). */
  createShard(options: ShardOptions): WorkerShard {
    this.total = options.total;
    this.gatewayUrl = options.gatewayUrl ?? this.gatewayUrl;
    const slot = this.slotFor(options.id);
    const shard = new WorkerShard(this, options);
    slot.shards.set(options.id, shard);
    return shard;
  }

  /** Worker threads currently running. */
  get workers(): Worker[] {
    return [...this.slots.values()].flatMap((slot) => (slot.worker ? [slot.worker] : []));
  }

  /** The worker running `shardId`, if any. */
  workerOf(shardId: number): Worker | null {
    return this.slots.get(this.slotIndex(shardId))?.worker ?? null;
  }

  /** Asks every worker at once for its shards' info; updates each shard's cached info. */
  async refresh(timeoutMs = 2_000): Promise<void> {
    await Promise.all([...this.slots.values()].map((slot) => this.ping(slot, timeoutMs).catch(() => undefined)));
  }

  /** Terminates every worker. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.filterHook?.();
    const slots = [...this.slots.values()];
    this.slots.clear();
    await Promise.all(slots.map((slot) => this.terminate(slot)));
  }

  // ---- used by WorkerShard -----------------------------------------------------------------------

  /** @internal */
  startShard(shard: WorkerShard): void {
    const slot = this.slotFor(shard.id);
    // A shard connected again after its close left its worker comes back to its slot.
    slot.shards.set(shard.id, shard);
    this.ensureWorker(slot);
    this.post(slot.index, { type: 'start', shardId: shard.id, session: shard.session, guarded: shard.guarded });
  }

  /** @internal */
  request(shardId: number, message: WithoutId<Extract<ToWorker, { id: number; shardId: number }>>, timeoutMs?: number): Promise<unknown> {
    const slot = this.slots.get(this.slotIndex(shardId));
    if (!slot?.worker) return Promise.reject(new ShardCommandError(shardId, 'its worker is not running'));
    return this.call(slot, message, timeoutMs);
  }

  /** @internal */
  post(index: number, message: ToWorker): void {
    this.slots.get(index)?.worker?.postMessage(message);
  }

  /** @internal A shard left its worker: the worker ends with its last shard. */
  release(shard: WorkerShard): void {
    const slot = this.slots.get(this.slotIndex(shard.id));
    if (!slot || slot.shards.get(shard.id) !== shard) return;
    slot.shards.delete(shard.id);
    if (slot.shards.size === 0) {
      this.slots.delete(slot.index);
      void this.terminate(slot);
    }
  }

  /** @internal */
  slotIndex(shardId: number): number {
    return Math.floor(shardId / this.shardsPerWorker);
  }

  // ---- internals ---------------------------------------------------------------------------------

  private wanted(): string[] | null {
    const filter = this.options.filter;
    return !filter || filter.decodesAll ? null : filter.wantedNames();
  }

  private forwarded(): string[] | null {
    const filter = this.options.filter;
    if (!filter) return [];
    return filter.forwardsAll ? null : filter.forwardedNames();
  }

  private broadcast(message: ToWorker): void {
    for (const slot of this.slots.values()) slot.worker?.postMessage(message);
  }

  private slotFor(shardId: number): Slot {
    const index = this.slotIndex(shardId);
    let slot = this.slots.get(index);
    if (!slot) {
      slot = { index, worker: null, shards: new Map(), pending: new Map(), acquires: new Map(), pingTimer: null, restarts: 0 };
      this.slots.set(index, slot);
    }
    return slot;
  }

  private ensureWorker(slot: Slot): void {
    if (slot.worker || this.stopped) return;
    const { file, execArgv } = workerEntry(this.options.strategy.workerEntry);
    const data: ShardWorkerData = {
      token: this.#token,
      shardOptions: this.shardOptions,
      total: this.total,
      gatewayUrl: this.gatewayUrl,
      wanted: this.wanted(),
      forwarded: this.forwarded(),
      sessionReportMs: this.options.strategy.sessionReportIntervalMs ?? 1_000,
    };
    const worker = new Worker(file, { workerData: data, ...(execArgv ? { execArgv } : {}) });
    slot.worker = worker;
    this.options.onDebug(`worker ${slot.index} started (thread ${worker.threadId}) for shards [${[...slot.shards.keys()].join(', ')}]`);
    worker.on('message', (message: FromWorker) => this.onMessage(slot, message));
    worker.on('error', (error: Error) => this.options.onError(this.cleanError(error, `worker ${slot.index}: `)));
    worker.on('exit', (code) => this.onExit(slot, worker, code));
  }

  /** Pings the worker from its hello on (loading the entry, under ts-node, may take longer than a ping timeout). */
  private supervise(slot: Slot, worker: Worker): void {
    if (slot.pingTimer) clearInterval(slot.pingTimer);
    slot.pingTimer = setInterval(() => {
      this.ping(slot, this.pingTimeoutMs).catch(() => {
        if (slot.worker !== worker) return;
        this.options.onError(new Error(`Shard worker ${slot.index} did not answer a ping within ${this.pingTimeoutMs} ms: replacing it`));
        void worker.terminate();
      });
    }, this.pingIntervalMs);
    slot.pingTimer.unref();
  }

  private ping(slot: Slot, timeoutMs: number): Promise<void> {
    return this.call(slot, { type: 'ping' }, timeoutMs).then(() => undefined);
  }

  private call(slot: Slot, message: WithoutId<ToWorker>, timeoutMs?: number): Promise<unknown> {
    const worker = slot.worker;
    if (!worker) return Promise.reject(new Error(`Shard worker ${slot.index} is not running`));
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      const timer =
        timeoutMs === undefined ? null : (
          setTimeout(() => {
            slot.pending.delete(id);
            reject(new Error(`Shard worker ${slot.index} did not answer within ${timeoutMs} ms`));
          }, timeoutMs)
        );
      slot.pending.set(id, { resolve, reject, timer });
      worker.postMessage({ ...message, id } as ToWorker);
    });
  }

  private onMessage(slot: Slot, message: FromWorker): void {
    switch (message.type) {
      case 'batch':
        for (const one of message.messages) this.onMessage(slot, one);
        slot.worker?.postMessage({ type: 'ack' } satisfies ToWorker);
        break;
      case 'hello':
        if (slot.worker) this.supervise(slot, slot.worker);
        break;
      case 'dispatch':
        slot.shards.get(message.shardId)?.onDispatch(message);
        break;
      case 'forwarded':
        slot.shards.get(message.shardId)?.onForwarded(message);
        break;
      case 'unreadable':
        if (slot.shards.get(message.shardId)?.onUnreadable(message)) {
          this.options.onUnreadable({ shardId: message.shardId, t: message.t, s: message.s, d: null }, message.problem);
        }
        break;
      case 'state':
        if (message.state === ShardState.Ready) slot.restarts = 0;
        slot.shards.get(message.shardId)?.onState(message.state, message.fatal);
        break;
      case 'stats':
        slot.shards.get(message.shardId)?.onStats(message.info, message.counters);
        break;
      case 'guard': {
        const shard = slot.shards.get(message.shardId);
        const answer = (allowed: boolean) => slot.worker?.postMessage({ type: 'guarded', id: message.id, allowed } satisfies ToWorker);
        if (!shard) answer(false);
        else shard.guard(message.kind).then(answer, () => answer(false));
        break;
      }
      case 'session':
        slot.shards.get(message.shardId)?.onSession(message.session);
        break;
      case 'debug':
        slot.shards.get(message.shardId)?.onDebug(message.message);
        break;
      case 'error': {
        const error = new Error(redactToken(message.message, this.#token));
        error.name = message.name;
        const shard = message.shardId === null ? undefined : slot.shards.get(message.shardId);
        if (shard) shard.onError(error);
        else this.options.onError(error);
        break;
      }
      case 'acquire': {
        const shard = slot.shards.get(message.shardId);
        const controller = new AbortController();
        slot.acquires.set(message.id, controller);
        const granted = shard ? shard.identifyQueue.acquire(message.shardId, controller.signal) : Promise.reject(new Error('unknown shard'));
        granted.then(
          () => {
            if (slot.acquires.delete(message.id)) slot.worker?.postMessage({ type: 'granted', id: message.id } satisfies ToWorker);
            // The worker gave its place up after the queue had granted it: no IDENTIFY will use this grant.
            else if (shard) {
              shard.onDebug('IDENTIFY was not sent (the shard gave its place up as the queue granted it): its session start goes back to the identify queue');
              shard.identifyQueue.refund?.(message.shardId);
            }
          },
          (error: Error) => {
            if (slot.acquires.delete(message.id)) slot.worker?.postMessage({ type: 'granted', id: message.id, error: error.message } satisfies ToWorker);
          },
        );
        break;
      }
      case 'identified':
        slot.shards.get(message.shardId)?.identifyQueue.identified?.(message.shardId);
        break;
      case 'abort-acquire':
        slot.acquires.get(message.id)?.abort();
        slot.acquires.delete(message.id);
        break;
      case 'refund-identify':
        slot.shards.get(message.shardId)?.identifyQueue.refund?.(message.shardId);
        break;
      case 'reply': {
        const pending = slot.pending.get(message.id);
        if (!pending) return;
        slot.pending.delete(message.id);
        if (pending.timer) clearTimeout(pending.timer);
        if (message.ok) pending.resolve(message.value);
        else {
          const error = new Error(message.error);
          error.name = message.errorName ?? 'Error';
          pending.reject(error);
        }
        break;
      }
      case 'pong': {
        for (const info of message.info) slot.shards.get(info.id)?.onInfo(info);
        const pending = slot.pending.get(message.id);
        if (!pending) return;
        slot.pending.delete(message.id);
        if (pending.timer) clearTimeout(pending.timer);
        pending.resolve(null);
        break;
      }
    }
  }

  private onExit(slot: Slot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    if (slot.pingTimer) clearInterval(slot.pingTimer);
    slot.pingTimer = null;
    for (const controller of slot.acquires.values()) controller.abort();
    slot.acquires.clear();
    for (const [id, pending] of slot.pending) {
      if (pending.timer) clearTimeout(pending.timer);
      pending.reject(new Error(`Shard worker ${slot.index} exited before answering`));
      slot.pending.delete(id);
    }
    const running = [...slot.shards.values()].filter((shard) => shard.running);
    for (const shard of slot.shards.values()) shard.onWorkerLost();
    if (this.stopped || this.slots.get(slot.index) !== slot || running.length === 0) return;
    slot.restarts++;
    const delay = Math.min(5_000, 100 * 2 ** Math.min(slot.restarts - 1, 6));
    this.options.onError(new Error(`Shard worker ${slot.index} exited with code ${code}: restarting it in ${delay} ms`));
    setTimeout(() => {
      if (this.stopped || this.slots.get(slot.index) !== slot || slot.worker) return;
      const toStart = [...slot.shards.values()].filter((shard) => shard.running);
      if (toStart.length === 0) return;
      this.ensureWorker(slot);
      for (const shard of toStart) {
        this.options.onDebug(`shard ${shard.id}: ${shard.session ? `resuming session ${shard.session.sessionId} at ${shard.session.sequence}` : 'identifying'} in the new worker`);
        this.post(slot.index, { type: 'start', shardId: shard.id, session: shard.session, guarded: shard.guarded });
      }
    }, delay).unref();
  }

  private async terminate(slot: Slot): Promise<void> {
    if (slot.pingTimer) clearInterval(slot.pingTimer);
    slot.pingTimer = null;
    const worker = slot.worker;
    slot.worker = null;
    for (const controller of slot.acquires.values()) controller.abort();
    slot.acquires.clear();
    if (worker) await worker.terminate();
  }

  private cleanError(error: Error, prefix: string): Error {
    const clean = new Error(prefix + redactToken(String(error?.message ?? error), this.#token));
    clean.name = error?.name ?? 'Error';
    return clean;
  }
}

/**
 * The main-thread side of a shard that runs in a worker: an {@link IGatewayShard} whose events, states, sessions
 * and figures come from the worker and whose commands go to it. Counters and info are those of the worker's last
 * report, which comes with every batch of events after a change and at least every `sessionReportIntervalMs`.
 */
export class WorkerShard implements IGatewayShard {
  readonly id: number;
  readonly total: number;
  /** The shard's counters as of its worker's last report, plus those of the workers it ran in before. */
  readonly counters = new ShardCounters();
  /** Counters of the shard's earlier runs (before a close, or in a worker that is gone): a new run counts from 0. */
  private readonly earlier = new ShardCounters();
  readonly identifyQueue: IIdentifyQueue;
  private readonly handshakeGuard: ((kind: HandshakeKind) => Promise<boolean>) | undefined;
  private readonly stateSubject = new BehaviorSubject<ShardState>(ShardState.Disconnected);
  private readonly dispatchSubject = new Subject<GatewayDispatch>();
  private readonly forwardedSubject = new Subject<ForwardedDispatch>();
  private readonly debugSubject = new Subject<string>();
  private readonly errorSubject = new Subject<Error>();
  private readonly waiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private lastSession: ShardSession | null;
  private lastInfo: ShardInfo | null = null;
  private lastError: Error | null = null;
  private fatal: GatewayFatalError | null = null;
  /** Commands sent to the worker and not answered yet. */
  private commandsInFlight = 0;
  /** Started and not closed: restarted with its worker. */
  running = false;

  readonly dispatch$: Observable<GatewayDispatch> = this.dispatchSubject.asObservable();
  readonly forwarded$: Observable<ForwardedDispatch> = this.forwardedSubject.asObservable();
  readonly state$: Observable<ShardState> = this.stateSubject.asObservable();
  readonly debug$: Observable<string> = this.debugSubject.asObservable();
  readonly error$: Observable<Error> = this.errorSubject.asObservable();

  constructor(
    private readonly pool: WorkerPool,
    options: ShardOptions,
  ) {
    this.id = options.id;
    this.total = options.total;
    this.identifyQueue = options.identifyQueue!;
    this.handshakeGuard = options.handshakeGuard;
    this.lastSession = options.session ?? null;
  }

  get state(): ShardState {
    return this.stateSubject.value;
  }

  /** The session the worker reported with the last READY/RESUMED, at the sequence of the last event received here. */
  get session(): ShardSession | null {
    return this.lastSession ? { ...this.lastSession } : null;
  }

  get latencyStats(): LatencyStats {
    return this.lastInfo?.latency ?? { last: null, average: null, recent: [] };
  }

  /** Commands sent through this handle that the worker has not written yet (or that are still on their way to it). */
  get pendingCommands(): number {
    return this.commandsInFlight;
  }

  get fatalError(): GatewayFatalError | null {
    return this.fatal;
  }

  /** @internal True when the shard asks a `handshakeGuard` (on this thread) before each IDENTIFY and RESUME. */
  get guarded(): boolean {
    return this.handshakeGuard !== undefined;
  }

  /** The worker's last info (with its last batch, or a ping answer), with the state and session known here. */
  info(): ShardInfo {
    const base: ShardInfo = this.lastInfo ?? {
      id: this.id,
      total: this.total,
      state: this.state,
      latency: this.latencyStats,
      sequence: null,
      sessionId: null,
      reconnectAttempts: 0,
      lastClose: null,
      lastError: null,
      commandBudget: { remaining: 0, refillInMs: 0 },
      paused: false,
      lagMs: 0,
      totalPausedMs: 0,
    };
    return {
      ...base,
      state: this.state,
      // The later of the worker's two reports: its info may be newer than the last event delivered here.
      sequence: this.lastSession ? latestSequence(this.lastSession, base) : base.sequence,
      sessionId: this.lastSession?.sessionId ?? base.sessionId,
      lastError: base.lastError ?? this.lastError?.message ?? null,
    };
  }

  commandBudget(): CommandBudget {
    return { ...this.info().commandBudget };
  }

  connect(): Promise<void> {
    if (this.fatal) return Promise.reject(this.fatal);
    const ready = new Promise<void>((resolve, reject) => {
      if (this.state === ShardState.Ready) resolve();
      else this.waiters.push({ resolve, reject });
    });
    if (!this.running) {
      this.running = true;
      this.pool.startShard(this);
    }
    return ready;
  }

  restart(): Promise<void> {
    if (!this.running) return this.connect();
    return this.pool.request(this.id, { type: 'restart', shardId: this.id }).then(() => undefined, (error: Error) => Promise.reject(this.commandError(error)));
  }

  async close(options: ShardCloseOptions = {}): Promise<ShardSession | null> {
    const resumable = options.resumable ?? false;
    const wasRunning = this.running;
    this.running = false;
    let session: ShardSession | null = resumable ? this.session : null;
    if (wasRunning) {
      try {
        const answer = (await this.pool.request(this.id, { type: 'close', shardId: this.id, resumable }, 10_000)) as ShardSession | null;
        session = resumable ? this.newer(answer) : null;
      } catch {
        // The worker is gone: the last reported session is what can be resumed.
      }
    }
    this.pool.release(this);
    addCounters(this.counters, this.earlier, true);
    if (this.state !== ShardState.FatallyClosed) this.setState(ShardState.Disconnected);
    this.rejectAll(new ShardCommandError(this.id, 'the shard was closed before this could complete'));
    this.lastSession = session;
    return session;
  }

  send(command: GatewaySendPayload): Promise<void> {
    this.commandsInFlight++;
    return this.pool.request(this.id, { type: 'send', shardId: this.id, command }).then(
      () => {
        this.commandsInFlight--;
      },
      (error: Error) => {
        this.commandsInFlight--;
        return Promise.reject(this.commandError(error));
      },
    );
  }

  pause(): void {
    this.pool.post(this.pool.slotIndex(this.id), { type: 'pause', shardId: this.id });
  }

  resume(): void {
    this.pool.post(this.pool.slotIndex(this.id), { type: 'resume', shardId: this.id });
  }

  toJSON(): { id: number; total: number; state: ShardState; sequence: number | null } {
    return { id: this.id, total: this.total, state: this.state, sequence: this.info().sequence };
  }

  // ---- from the pool -----------------------------------------------------------------------------

  /** @internal */
  onDispatch(message: { t: string; s: number; d: string; session?: ShardSession | null }): void {
    if (!this.accept(message)) return;
    this.dispatchSubject.next({ shardId: this.id, t: message.t, s: message.s, d: JSON.parse(message.d) as unknown, sessionId: this.lastSession?.sessionId });
  }

  /** @internal */
  onForwarded(message: { t: string; s: number; frame: Uint8Array }): void {
    if (!this.accept(message)) return;
    // A Buffer crosses threads as a plain Uint8Array: viewed as a Buffer again, without a copy.
    const { buffer, byteOffset, byteLength } = message.frame;
    const frame = Buffer.from(buffer, byteOffset, byteLength);
    this.forwardedSubject.next({ shardId: this.id, t: message.t, s: message.s, sessionId: this.lastSession?.sessionId, frame });
  }

  /**
   * @internal A dispatch the worker could not pass on: counted as received (a resume does not ask for it again).
   * False when it was already delivered.
   */
  onUnreadable(message: { t: string; s: number; session?: ShardSession | null }): boolean {
    return this.accept(message);
  }

  /** @internal */
  onSession(session: ShardSession | null): void {
    this.lastSession = session ? this.newer(session) : null;
  }

  /** @internal The worker's figures for this shard. */
  onStats(info: ShardInfo, counters: ShardCountersData): void {
    this.lastInfo = info;
    addCounters(this.earlier, this.counters, true);
    addCounters(counters, this.counters, false);
  }

  /** @internal */
  onState(state: ShardState, fatal?: { code: number; reason: string }): void {
    if (state === ShardState.FatallyClosed) {
      this.running = false;
      this.fatal = new GatewayFatalError(this.id, fatal?.code ?? 0, fatal?.reason ?? 'closed fatally in its worker');
      this.lastSession = null;
    }
    this.setState(state);
    if (state === ShardState.Ready) for (const waiter of this.waiters.splice(0)) waiter.resolve();
    if (this.fatal) this.rejectAll(this.fatal);
  }

  /** @internal */
  onDebug(message: string): void {
    this.debugSubject.next(message);
  }

  /** @internal */
  onError(error: Error): void {
    // The fatal error is the one the state change carried: the same object, as a Shard reports it.
    const reported = this.fatal && error.name === 'GatewayFatalError' ? this.fatal : error;
    this.lastError = reported;
    this.errorSubject.next(reported);
  }

  /** @internal */
  onInfo(info: ShardInfo): void {
    this.lastInfo = info;
  }

  /** @internal The worker asks whether this shard may send its handshake now. */
  guard(kind: HandshakeKind): Promise<boolean> {
    return this.handshakeGuard ? this.handshakeGuard(kind) : Promise.resolve(true);
  }

  /** @internal The worker died: the shard waits for the new one. */
  onWorkerLost(): void {
    addCounters(this.counters, this.earlier, true);
    if (this.state !== ShardState.FatallyClosed && this.state !== ShardState.Disconnected) this.setState(ShardState.Disconnected);
  }

  /**
   * Advances the sequence, and takes the session READY or RESUMED carry; false for an event already delivered
   * (replayed after a resume from an older report).
   */
  private accept(message: { t: string; s: number; session?: ShardSession | null }): boolean {
    const session = this.lastSession;
    if (message.t !== 'READY' && session && session.sequence !== null && message.s <= session.sequence) return false;
    if (session && message.t !== 'READY') session.sequence = message.s;
    if (message.session !== undefined) this.lastSession = message.session ? this.newer(message.session) : null;
    return true;
  }

  private newer(session: ShardSession | null): ShardSession | null {
    const known = this.lastSession;
    if (!session) return null;
    if (known && known.sessionId === session.sessionId && (known.sequence ?? -1) > (session.sequence ?? -1)) {
      return { ...session, sequence: known.sequence };
    }
    return { ...session };
  }

  private commandError(error: Error): Error {
    if (error.name === 'ShardCommandError') return new ShardCommandError(this.id, error.message.replace(/^Shard \d+: /, ''));
    return error;
  }

  private rejectAll(error: Error): void {
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  private setState(state: ShardState): void {
    if (this.stateSubject.value !== state) this.stateSubject.next(state);
  }
}

/** Adds the figures of `from` to those of `to`, or sets them over them when `replace`. */
function addCounters(from: ShardCountersData, to: ShardCounters, replace: boolean): void {
  if (replace) {
    to.eventsByType.clear();
    to.reconnectsByReason.clear();
    to.identifies = to.resumes = to.payloadBytes = to.receivedBytes = to.commandsSent = 0;
  }
  for (const [event, count] of from.eventsByType) to.eventsByType.set(event, (to.eventsByType.get(event) ?? 0) + count);
  for (const [reason, count] of from.reconnectsByReason) to.reconnectsByReason.set(reason, (to.reconnectsByReason.get(reason) ?? 0) + count);
  to.identifies += from.identifies;
  to.resumes += from.resumes;
  to.payloadBytes += from.payloadBytes;
  to.receivedBytes += from.receivedBytes;
  to.commandsSent += from.commandsSent;
}

/** The session's sequence, or the info's when that is of the same session and further on. */
function latestSequence(session: ShardSession, info: ShardInfo): number | null {
  if (info.sessionId !== session.sessionId || info.sequence === null) return session.sequence;
  return session.sequence === null ? info.sequence : Math.max(session.sequence, info.sequence);
}
