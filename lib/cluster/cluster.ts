import type { RESTGetAPIGatewayBotResult, GatewaySendPayload } from 'discord-api-types/v10';
import { Subject, type Observable, type Subscription } from 'rxjs';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import { SessionStartLimitError } from '../errors/session-start-limit.error';
import type { ClusterOptions, IdentifyQueueFactoryOptions } from '../interfaces/cluster-options.interface';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';
import type { IIdentifyQueue } from '../interfaces/identify-queue.interface';
import type { ISessionStore } from '../interfaces/session-store.interface';
import type { HandshakeKind, ShardOptions } from '../interfaces/shard-options.interface';
import type { OwnershipEvent } from '../interfaces/shard-ownership-event.interface';
import type { ShardSession } from '../interfaces/shard-session.interface';
import { abortError } from '../queue/abort-error';
import { InMemoryIdentifyQueue } from '../queue/in-memory-identify-queue';
import { InMemorySessionStore } from '../session/in-memory-session-store';
import type { DispatchFilter } from '../shard/dispatch-filter';
import { resolveShardOptions } from '../shard/resolve-shard-options';
import { Shard, type ShardInfo } from '../shard/shard';
import { ShardState } from '../shard/shard-state';
import { requireTransportUrl } from '../shard/transport-security';
import { GuildAvailability, type GuildsReadyEvent } from './guild-availability';
import { resolveShardScheme, shardIdForGuild, validateShardScheme } from './resolve-shard-scheme';
import { RestGatewayInfoSource } from './rest-gateway-info-source';
import { WorkerPool } from '../workers/worker-pool';

/** A state change of one shard. */
export interface ShardStateChange {
  shardId: number;
  state: ShardState;
}

/** One debug line of a cluster: from one of its shards, or from the cluster itself (`shardId` null). */
export interface ClusterDebugEntry {
  shardId: number | null;
  message: string;
}

/** {@link ShardInfo} plus what the cluster tracks per shard. */
export interface ClusterShardInfo extends ShardInfo {
  guilds: { available: number; unavailable: number };
  guildsReady: boolean;
}

/** Options of {@link Cluster.addShard}. */
export interface AddShardOptions {
  /**
   * The session to resume: a session resumes, `null` identifies. When left out, the session store's session of the
   * shard is resumed (if it was opened with the same shard count), else the shard identifies.
   */
  session?: ShardSession | null;
  /** Asked right before this shard sends IDENTIFY or RESUME (see `ShardOptions.handshakeGuard`); overrides the cluster's. */
  handshakeGuard?: (kind: HandshakeKind) => Promise<boolean>;
}

/** Options of {@link Cluster.removeShard}. */
export interface RemoveShardOptions {
  /** Close with 4200 and keep the session (`true`), or close with 1000 and end it (`false`). */
  resumable: boolean;
  /**
   * Write the outcome to the session store: the session after a resumable close, its deletion after a normal one.
   * Turn off when the shard may now belong to another process, whose session must not be overwritten.
   * @defaultValue `true`
   */
  updateStore?: boolean;
}

/** A shard's resumable session, as `downResumable()` returns it. */
export type ResumableSessions = Record<number, { sessionId: string; sequence: number | null; resumeUrl: string }>;

interface ShardEntry {
  shard: Shard;
  guilds: GuildAvailability;
  subscriptions: Subscription[];
}

/**
 * Runs a set of shards as one: shared identify queue, saved sessions, merged event stream. Usable without Nest.
 *
 * ```ts
 * const cluster = new Cluster({ token, intents, shards: 'auto' });
 * cluster.dispatch$.subscribe((event) => console.log(event.shardId, event.t));
 * await cluster.up();
 * ```
 */
export class Cluster {
  readonly #token: string;
  private readonly options: ClusterOptions;
  private readonly sessionStore: ISessionStore;
  private readonly entries = new Map<number, ShardEntry>();
  private readonly dispatchSubject = new Subject<GatewayDispatch>();
  private readonly stateSubject = new Subject<ShardStateChange>();
  private readonly guildsReadySubject = new Subject<GuildsReadyEvent>();
  private readonly debugSubject = new Subject<ClusterDebugEntry>();
  private readonly errorSubject = new Subject<Error>();
  private readonly ownershipSubject = new Subject<OwnershipEvent>();
  /** Shards an ownership layer says this process owns; null while none reports. */
  private owned: Set<number> | null = null;
  private saveTimer: NodeJS.Timeout | null = null;
  private starting: Promise<void> | null = null;
  private shardTotal = 0;
  /** Settles once `up()` knows the shard count, gateway URL and identify queue (what `addShard` needs). */
  private prepared: Promise<void> | null = null;
  private gatewayUrl = '';
  private startOrder: StartOrderQueue | null = null;
  /** Shards `addShard` is reading a session for: reserved, not yet in `entries`. */
  private readonly adding = new Set<number>();
  /** The worker threads of `strategy: { type: 'workers' }`, once shards are created. */
  private pool: WorkerPool | null = null;

  /** Every dispatch of every shard, each carrying its `shardId`. */
  readonly dispatch$: Observable<GatewayDispatch> = this.dispatchSubject.asObservable();
  /** State changes of every shard. */
  readonly state$: Observable<ShardStateChange> = this.stateSubject.asObservable();
  /** Per shard, once per session: every guild listed in READY has arrived (or the wait timed out). */
  readonly guildsReady$: Observable<GuildsReadyEvent> = this.guildsReadySubject.asObservable();
  /** Debug lines of the cluster and its shards. Never contain the token. */
  readonly debug$: Observable<ClusterDebugEntry> = this.debugSubject.asObservable();
  /** Errors of the cluster and its shards. */
  readonly error$: Observable<Error> = this.errorSubject.asObservable();
  /** Claims, releases and losses of shards, and membership changes, as an ownership layer reports them. */
  readonly ownership$: Observable<OwnershipEvent> = this.ownershipSubject.asObservable();

  /**
   * The shards this process owns, ascending: those an ownership layer reported claimed and not yet released or
   * lost, or, without an ownership layer, every shard this cluster runs.
   */
  get ownedShards(): number[] {
    const ids = this.owned ?? new Set(this.entries.keys());
    return [...ids].sort((a, b) => a - b);
  }

  /**
   * Records an ownership change; called by the ownership layer (`ShardOwnership` does), then emitted on
   * {@link ownership$}. From the first call on, {@link ownedShards} follows these reports.
   */
  recordOwnership(event: OwnershipEvent): void {
    this.owned ??= new Set();
    if (event.type === 'claimed') this.owned.add(event.shardId);
    else if (event.type === 'released' || event.type === 'lost') this.owned.delete(event.shardId);
    this.ownershipSubject.next(event);
  }

  /** @throws {@link GatewayOptionsError} naming the first invalid option. */
  constructor(options: ClusterOptions) {
    validateShardScheme(options?.shards);
    resolveShardOptions({ ...options, id: 0, total: 1, gatewayUrl: options.gatewayUrl });
    for (const key of ['identifyWindowMs', 'sessionSaveIntervalMs', 'guildReadyTimeout'] as const) {
      const value = options[key];
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        // Only numbers are echoed: a string here could be a token given to the wrong option.
        throw new GatewayOptionsError(key, `must be an integer >= 1, got ${typeof value === 'number' ? value : typeof value}`);
      }
    }
    if (!options.gatewayInfo) {
      requireTransportUrl('apiUrl', options.apiUrl ?? 'https://discord.com/api', ['http:', 'https:'], !!options.allowInsecureGateway);
    }
    validateStrategy(options.strategy);
    if (options.strategy?.type === 'workers' && options.handshakeGuard) {
      throw new GatewayOptionsError('handshakeGuard', `is not supported with strategy { type: 'workers' }`);
    }
    this.#token = options.token;
    this.options = { ...options, token: '' };
    this.sessionStore = options.sessionStore ?? new InMemorySessionStore();
  }

  /** The filter shared by the shards, when the options gave one (without one, every event is decoded). */
  get dispatchFilter(): DispatchFilter | undefined {
    return this.options.dispatchFilter;
  }

  /** Shard count of the whole bot (0 before `up()`). */
  get total(): number {
    return this.shardTotal;
  }

  /** The shards run here, by id. */
  get shards(): ReadonlyMap<number, Shard> {
    return new Map([...this.entries].map(([id, entry]) => [id, entry.shard]));
  }

  /** The shard that receives a guild's events. */
  shardIdForGuild(guildId: string | bigint): number {
    if (this.shardTotal === 0) throw new Error('The cluster has not started: call up() first');
    return shardIdForGuild(guildId, this.shardTotal);
  }

  /** True when this cluster runs `shardId` (whatever its state). */
  has(shardId: number): boolean {
    return this.entries.has(shardId);
  }

  /**
   * Starts running one more shard of the bot (`0 <= id < total`), after `up()`: for clusters whose set of shards
   * changes while they run, e.g. when processes share the shards through leases. It resumes the given session, or
   * the session store's, and identifies otherwise (through the cluster's identify queue, in shard order).
   * Resolves when the shard is ready; rejects on a fatal close, or when it is closed or removed first.
   * @throws {@link GatewayOptionsError} when `id` is out of range or already run here.
   */
  async addShard(id: number, options: AddShardOptions = {}): Promise<void> {
    if (!this.starting || !this.prepared) throw new Error('The cluster has not started: call up() first');
    await this.prepared;
    const total = this.shardTotal;
    if (!Number.isInteger(id) || id < 0 || id >= total) {
      throw new GatewayOptionsError('shardId', `must be an integer from 0 to ${total - 1}, got ${String(id)}`);
    }
    if (this.entries.has(id) || this.adding.has(id)) {
      throw new GatewayOptionsError('shardId', `shard ${id} is already run by this cluster`);
    }
    if (options.handshakeGuard && this.options.strategy?.type === 'workers') {
      throw new GatewayOptionsError('handshakeGuard', `is not supported with strategy { type: 'workers' }`);
    }
    let session = options.session;
    if (session === undefined) {
      this.adding.add(id);
      try {
        const saved = await this.storeCall(() => this.sessionStore.get(id));
        session = saved && (saved.shardCount === undefined || saved.shardCount === total) ? saved : null;
      } finally {
        this.adding.delete(id);
      }
      if (!this.starting || this.entries.has(id)) throw new Error(`Shard ${id} was not added: the cluster stopped or added it meanwhile`);
    }
    const shard = this.createShard({
      ...this.options,
      ...(options.handshakeGuard ? { handshakeGuard: options.handshakeGuard } : {}),
      token: this.#token,
      id,
      total,
      gatewayUrl: this.gatewayUrl,
      identifyQueue: this.startOrder!,
      session,
    });
    if (!session) this.startOrder!.add(id);
    this.attach(shard, this.startOrder!);
    this.debug(`adding shard ${id} of ${total}: ${session ? `resuming session ${session.sessionId}` : 'identifying'}`);
    return shard.connect();
  }

  /**
   * Stops running one shard and forgets it. With `resumable: true` it closes with 4200 and returns its session,
   * which another cluster (another process) can resume; with `false` it closes with 1000, ending the session.
   * The session store is updated (and flushed) unless `updateStore` is false.
   * @throws {@link GatewayOptionsError} when this cluster does not run the shard.
   */
  async removeShard(id: number, options: RemoveShardOptions): Promise<ShardSession | null> {
    const entry = this.entry(id);
    this.entries.delete(id);
    this.startOrder?.forget(id);
    let session: ShardSession | null;
    try {
      session = await entry.shard.close({ resumable: options.resumable });
    } finally {
      this.detach(entry);
    }
    if (options.updateStore !== false) {
      if (session) await this.storeCall(() => this.sessionStore.set(id, session!));
      else await this.storeCall(() => this.sessionStore.delete(id));
      await this.flushStore();
    }
    this.debug(`removed shard ${id}${session ? ` (resumable at sequence ${session.sequence})` : ''}`);
    return session;
  }

  /**
   * Writes the current session of each listed shard this cluster runs (every shard by default) to the session
   * store, and flushes it. Store errors are reported on `error$` like those of the periodic saves.
   */
  async saveSessions(ids?: number[]): Promise<void> {
    for (const [id, entry] of this.entries) {
      if (ids && !ids.includes(id)) continue;
      const session = entry.shard.session;
      if (session) await this.storeCall(() => this.sessionStore.set(id, session));
    }
    await this.flushStore();
  }

  /**
   * Creates and connects every shard. Resolves when all are ready; rejects on the first fatal close, naming the
   * shard and the reason, or with a {@link SessionStartLimitError}.
   */
  up(): Promise<void> {
    this.starting ??= this.start().catch((error) => {
      this.starting = null;
      throw error;
    });
    return this.starting;
  }

  /** Resolves when every shard is ready (at once if they are). */
  async ready(): Promise<void> {
    await this.up();
    await Promise.all([...this.entries.values()].map(({ shard }) => (shard.state === ShardState.Ready ? undefined : shard.connect())));
  }

  /** Closes every shard with 1000, ending their sessions, and forgets the saved sessions. */
  async down(): Promise<void> {
    this.stopSaving();
    await Promise.all(
      [...this.entries].map(async ([id, entry]) => {
        await entry.shard.close();
        await this.storeCall(() => this.sessionStore.delete(id));
      }),
    );
    await this.flushStore();
    await this.stopPool();
    this.reset();
  }

  /** Closes every shard resumably, saves and returns their sessions. */
  async downResumable(): Promise<ResumableSessions> {
    this.stopSaving();
    const result: ResumableSessions = {};
    await Promise.all(
      [...this.entries].map(async ([id, entry]) => {
        const session = await entry.shard.close({ resumable: true });
        if (!session) return;
        await this.storeCall(() => this.sessionStore.set(id, session));
        result[id] = { sessionId: session.sessionId, sequence: session.sequence, resumeUrl: session.resumeUrl };
      }),
    );
    await this.flushStore();
    await this.stopPool();
    this.reset();
    return result;
  }

  /** A snapshot of every shard, in id order. */
  info(): ClusterShardInfo[] {
    return [...this.entries.values()].map(({ shard, guilds }) => ({
      ...shard.info(),
      guilds: guilds.counts(),
      guildsReady: guilds.guildsReady,
    }));
  }

  /**
   * Like {@link info}, but with worker threads (`strategy: { type: 'workers' }`) every worker is asked at once for
   * fresh figures first (those that do not answer within `timeoutMs` keep their last ones).
   */
  async collectInfo(timeoutMs = 2_000): Promise<ClusterShardInfo[]> {
    await this.pool?.refreshInfo(timeoutMs);
    return this.info();
  }

  /** The worker threads' pool with `strategy: { type: 'workers' }` (null in-process, or before `up()`). */
  get workerPool(): WorkerPool | null {
    return this.pool;
  }

  /** Reconnects one shard now: resumes when its session allows, identifies otherwise. */
  restart(shardId: number): Promise<void> {
    try {
      return this.entry(shardId).shard.restart();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Stops reading one shard's socket (backpressure); heartbeats go on. */
  pause(shardId: number): void {
    this.entries.get(shardId)?.shard.pause();
  }

  /** Starts reading one shard's socket again. */
  resume(shardId: number): void {
    this.entries.get(shardId)?.shard.resume();
  }

  /** Sends a command through one shard. */
  send(shardId: number, command: GatewaySendPayload): Promise<void> {
    try {
      return this.entry(shardId).shard.send(command);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Sends a command through the shard that owns `guildId`. */
  sendToGuild(guildId: string | bigint, command: GatewaySendPayload): Promise<void> {
    try {
      return this.send(this.shardIdForGuild(guildId), command);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Hides the token from `util.inspect`. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Cluster { total: ${this.shardTotal}, shards: [${[...this.entries.keys()].join(', ')}] }`;
  }

  // ---- internals ----------------------------------------------------------------------------------

  private entry(shardId: number): ShardEntry {
    const entry = this.entries.get(shardId);
    if (!entry) throw new GatewayOptionsError('shardId', `shard ${shardId} is not run by this cluster`);
    return entry;
  }

  private async start(): Promise<void> {
    let prepared!: () => void;
    let failed!: (error: unknown) => void;
    this.prepared = new Promise<void>((resolve, reject) => {
      prepared = resolve;
      failed = reject;
    });
    this.prepared.catch(() => undefined);
    try {
      await this.startShards(prepared);
    } catch (error) {
      failed(error);
      throw error;
    }
  }

  private async startShards(prepared: () => void): Promise<void> {
    const options = this.options;
    const scheme = options.shards ?? 'auto';
    const needInfo = scheme === 'auto' || !options.gatewayUrl || !options.identifyQueue;
    let info: RESTGetAPIGatewayBotResult | null = null;
    if (needInfo) {
      const source =
        options.gatewayInfo ??
        new RestGatewayInfoSource({ token: this.#token, apiUrl: options.apiUrl, allowInsecure: options.allowInsecureGateway });
      info = await source.fetch();
      this.debug(`GET /gateway/bot: ${info.shards} shard(s), max_concurrency ${info.session_start_limit.max_concurrency}, ${info.session_start_limit.remaining} session start(s) left`);
    }
    const { total, ids } = resolveShardScheme(scheme, info?.shards);

    const sessions = new Map<number, ShardSession>();
    for (const id of ids) {
      const saved = await this.storeCall(() => this.sessionStore.get(id));
      if (saved && (saved.shardCount === undefined || saved.shardCount === total)) sessions.set(id, saved);
      else if (saved) this.debug(`shard ${id}: ignoring a saved session of a ${saved.shardCount}-shard bot`);
    }
    const needIdentify = ids.length - sessions.size;
    const limit = info?.session_start_limit;
    if (limit && needIdentify > limit.remaining && !options.waitForSessionStartLimit) {
      throw new SessionStartLimitError(needIdentify, limit.remaining, limit.reset_after);
    }
    const queueOptions: IdentifyQueueFactoryOptions = {
      maxConcurrency: limit?.max_concurrency ?? 1,
      windowMs: options.identifyWindowMs,
      sessionStartLimit: limit ? { remaining: limit.remaining, total: limit.total, resetAfter: limit.reset_after } : undefined,
      log: (message) => this.debug(message),
    };
    const queue: IIdentifyQueue =
      options.identifyQueue ??
      (options.identifyQueueFactory ? options.identifyQueueFactory(queueOptions) : new InMemoryIdentifyQueue(queueOptions));

    this.shardTotal = total;
    const gatewayUrl = options.gatewayUrl ?? info!.url;
    this.gatewayUrl = gatewayUrl;
    // HELLOs arrive in any order: hand the first IDENTIFY requests to the queue in shard order so buckets start in order.
    const startOrder = new StartOrderQueue(queue, ids.filter((id) => !sessions.has(id)));
    this.startOrder = startOrder;
    prepared();
    for (const id of ids) {
      const shard = this.createShard({
        ...options,
        token: this.#token,
        id,
        total,
        gatewayUrl,
        identifyQueue: startOrder,
        session: sessions.get(id) ?? null,
      });
      this.attach(shard, startOrder);
    }
    this.startSaving();
    this.debug(`starting shards [${ids.join(', ')}] of ${total}${sessions.size ? `, resuming ${sessions.size}` : ''}`);
    await Promise.all(ids.map((id) => this.entries.get(id)!.shard.connect()));
  }

  /** A shard in this thread, or the handle of one in a worker thread. */
  private createShard(options: ShardOptions): Shard {
    const strategy = this.options.strategy;
    if (strategy?.type !== 'workers') return new Shard(options);
    this.pool ??= new WorkerPool(this.#token, {
      strategy,
      clusterOptions: this.options,
      filter: this.options.dispatchFilter,
      onError: (error) => this.errorSubject.next(error),
      onDebug: (message) => this.debug(message),
    });
    // The handle has every member of Shard that the cluster, its services and the metrics read.
    return this.pool.createShard(options) as unknown as Shard;
  }

  private async stopPool(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.stop();
  }

  private attach(shard: Shard, startOrder: StartOrderQueue): void {
    const id = shard.id;
    const guilds = new GuildAvailability(id, this.options.guildReadyTimeout ?? 15_000, (event) =>
      this.guildsReadySubject.next(event),
    );
    const subscriptions = [
      shard.dispatch$.subscribe((event) => {
        guilds.handle(event);
        if (event.t === 'READY' || event.t === 'RESUMED') this.saveSession(shard);
        this.dispatchSubject.next(event);
      }),
      shard.state$.subscribe((state) => {
        if (state === ShardState.FatallyClosed) {
          startOrder.forget(id);
          void this.storeCall(() => this.sessionStore.delete(id));
        }
        this.stateSubject.next({ shardId: id, state });
      }),
      shard.debug$.subscribe((message) => this.debugSubject.next({ shardId: id, message })),
      shard.error$.subscribe((error) => this.errorSubject.next(error)),
    ];
    this.entries.set(id, { shard, guilds, subscriptions });
  }

  private saveSession(shard: Shard): void {
    const session = shard.session;
    if (session) void this.storeCall(() => this.sessionStore.set(shard.id, session));
  }

  private startSaving(): void {
    const every = this.options.sessionSaveIntervalMs ?? 60_000;
    this.saveTimer = setInterval(() => {
      for (const { shard } of this.entries.values()) if (shard.state === ShardState.Ready) this.saveSession(shard);
      void this.flushStore();
    }, every);
    this.saveTimer.unref();
  }

  private stopSaving(): void {
    if (this.saveTimer) clearInterval(this.saveTimer);
    this.saveTimer = null;
  }

  private reset(): void {
    for (const entry of this.entries.values()) this.detach(entry);
    this.entries.clear();
    this.starting = null;
    this.prepared = null;
  }

  private detach(entry: ShardEntry): void {
    entry.guilds.stop();
    for (const subscription of entry.subscriptions) subscription.unsubscribe();
  }

  /** Sends the store's buffered writes, for stores that batch them. */
  private async flushStore(): Promise<void> {
    const store = this.sessionStore;
    if (store.flush) await this.storeCall(() => store.flush!());
  }

  private async storeCall<T>(call: () => Promise<T>): Promise<T | null> {
    try {
      return await call();
    } catch (error) {
      this.errorSubject.next(new Error(`Session store failed: ${(error as Error).message}`));
      return null;
    }
  }

  private debug(message: string): void {
    if (this.debugSubject.observed) this.debugSubject.next({ shardId: null, message });
  }
}

function validateStrategy(strategy: ClusterOptions['strategy']): void {
  if (strategy === undefined) return;
  if (typeof strategy !== 'object' || strategy === null || (strategy.type !== 'in-process' && strategy.type !== 'workers')) {
    throw new GatewayOptionsError('strategy', `must be { type: 'in-process' } or { type: 'workers', shardsPerWorker? }`);
  }
  if (strategy.type !== 'workers') return;
  for (const key of ['shardsPerWorker', 'pingIntervalMs', 'pingTimeoutMs', 'sessionReportIntervalMs'] as const) {
    const value = strategy[key];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new GatewayOptionsError(`strategy.${key}`, `must be an integer >= 1, got ${typeof value === 'number' ? value : typeof value}`);
    }
  }
}

/**
 * Passes each starting shard's first IDENTIFY request to `queue` only after those of every lower shard id, so that
 * the queue sees them in bucket order however the HELLOs arrive. Later requests go straight through.
 */
class StartOrderQueue implements IIdentifyQueue {
  private readonly pending: number[];
  private readonly held = new Map<number, () => void>();

  constructor(
    private readonly queue: IIdentifyQueue,
    ids: number[],
  ) {
    this.pending = [...ids].sort((a, b) => a - b);
  }

  acquire(shardId: number, signal?: AbortSignal): Promise<void> {
    const index = this.pending.indexOf(shardId);
    if (index <= 0) {
      const granted = this.queue.acquire(shardId, signal);
      if (index === 0) this.forwardNext();
      return granted;
    }
    if (signal?.aborted) return Promise.reject(abortError());
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.held.delete(shardId);
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.held.set(shardId, () => {
        signal?.removeEventListener('abort', onAbort);
        this.queue.acquire(shardId, signal).then(resolve, reject);
      });
    });
  }

  identified(shardId: number): void {
    this.queue.identified?.(shardId);
  }

  /** Puts a shard that starts later (without a session) into the start order. */
  add(shardId: number): void {
    if (this.pending.includes(shardId)) return;
    let at = this.pending.length;
    while (at > 0 && this.pending[at - 1] > shardId) at--;
    this.pending.splice(at, 0, shardId);
  }

  /** Takes a shard out of the start order (it closed before asking), so the shards behind it are not held. */
  forget(shardId: number): void {
    const index = this.pending.indexOf(shardId);
    if (index < 0) return;
    if (index === 0) this.forwardNext();
    else this.pending.splice(index, 1);
  }

  /** Drops the head of `pending` and forwards the requests already waiting behind it, in order. */
  private forwardNext(): void {
    this.pending.shift();
    while (this.pending.length > 0) {
      const forward = this.held.get(this.pending[0]);
      if (!forward) return;
      this.held.delete(this.pending.shift()!);
      forward();
    }
  }
}
