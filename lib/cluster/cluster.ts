import type { RESTGetAPIGatewayBotResult, GatewaySendPayload, GatewayChannelInfoDispatchData } from 'discord-api-types/v10';
import { Subject, type Observable, type Subscription } from 'rxjs';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import { GatewayStartTimeoutError } from '../errors/gateway-start-timeout.error';
import { MalformedPayloadError } from '../errors/malformed-payload.error';
import { SessionStartLimitError } from '../errors/session-start-limit.error';
import type { Clock, ClockTimer } from '../interfaces/clock.interface';
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
import { realClock } from '../shard/real-clock';
import { resolveShardOptions } from '../shard/resolve-shard-options';
import { Shard, type ShardInfo } from '../shard/shard';
import { ShardState } from '../shard/shard-state';
import { requireTransportUrl } from '../shard/transport-security';
import { ChannelInfoRequests, type RequestChannelInfoOptions } from './channel-info-requests';
import { GuildAvailability, type GuildsReadyEvent } from './guild-availability';
import { resolveShardScheme, shardIdForGuild, validateShardScheme } from './resolve-shard-scheme';
import { RestGatewayInfoSource } from './rest-gateway-info-source';
import { SequenceCheckpointer } from './sequence-checkpointer';
import type { IHandlingTracker } from '../interfaces/handling-tracker.interface';
import { WorkerPool } from '../workers/worker-pool';
import { redactToken } from '../workers/worker-messages';

/** Failed connection attempts in a row after which a shard's trouble is reported on `error$`. */
const WARN_AFTER_FAILED_ATTEMPTS = 3;
/** After the first report, one more every this many failed attempts. */
const WARN_EVERY_FAILED_ATTEMPTS = 20;

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
  /**
   * The `clock` option, or the real clock: times the session saves, and is given to the shards, the identify queue
   * and the guild-availability waits (and taken by a `ShardOwnership` of this cluster).
   */
  readonly clock: Clock;
  private saveTimer: ClockTimer | null = null;
  /** Saves the handled sequence of busy shards soon after their events (`sequenceSaveIntervalMs`). */
  private readonly checkpointer: SequenceCheckpointer | null = null;
  private handling: IHandlingTracker | null = null;
  /** `sessionId:sequence` last saved per shard by the checkpointer, so that unchanged sessions are not written. */
  private readonly checkpointed = new Map<number, string>();
  private checkpointFailing = false;
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
  /** `options.sessions`, until the first `up()` has written them to the session store. */
  private givenSessions: Map<number, ShardSession> | null;
  private channelInfo: ChannelInfoRequests | null = null;
  /** Malformed dispatches reported, per shard id and event name. */
  private readonly malformed = new Map<number, Map<string, number>>();
  /** Dispatches already reported as malformed: each is reported (logged, counted) once, however many consumers see it. */
  private readonly reported = new WeakSet<GatewayDispatch>();

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
    validateClusterOptions(options);
    this.givenSessions = validateSessions(options.sessions);
    this.#token = options.token;
    this.options = { ...options, token: '' };
    this.sessionStore = options.sessionStore ?? new InMemorySessionStore();
    this.clock = options.clock ?? realClock;
    if (options.sequenceSaveIntervalMs !== undefined && options.sequenceSaveIntervalMs !== null) {
      this.checkpointer = new SequenceCheckpointer(options.sequenceSaveIntervalMs, (ids) => this.checkpoint(ids));
    }
  }

  /**
   * Sets what says which events are still being handled (the Nest module sets its event router): saved sequences
   * then stay below the oldest event whose handling has not settled. Without one, an event counts as handled once
   * {@link dispatch$} has delivered it.
   */
  trackHandling(tracker: IHandlingTracker | null): void {
    this.handling = tracker;
  }

  /**
   * Tells the cluster that the handling of some events of `shardId` settled (its handled sequence may have moved),
   * so that it is saved within `sequenceSaveIntervalMs`. Called by the {@link IHandlingTracker}.
   */
  sequenceHandled(shardId: number): void {
    this.checkpointer?.touch(shardId);
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
    this.starting ??= this.withStartDeadline(this.start()).catch((error) => {
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
    return [...this.entries.values()].map(({ shard, guilds }) => {
      const info = shard.info();
      // The close reason is the server's text, and the last error may quote it: redacted like debug lines.
      return {
        ...info,
        lastClose: info.lastClose && { ...info.lastClose, reason: redactToken(info.lastClose.reason, this.#token) },
        lastError: info.lastError === null ? null : redactToken(info.lastError, this.#token),
        guilds: guilds.counts(),
        guildsReady: guilds.guildsReady,
      };
    });
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

  /**
   * Request Channel Info (op 43) for a guild, through its shard (or `shardId`): resolves with the `CHANNEL_INFO`
   * reply. Requests for one guild run one after the other, as the reply carries no nonce.
   */
  requestChannelInfo(
    guildId: string,
    options: RequestChannelInfoOptions & { shardId?: number } = {},
  ): Promise<GatewayChannelInfoDispatchData> {
    try {
      this.channelInfo ??= new ChannelInfoRequests(this);
      const { shardId, ...rest } = options;
      return this.channelInfo.request(shardId ?? this.shardIdForGuild(guildId), guildId, rest);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reports a dispatch whose data a consumer cannot use: counts it (see {@link malformedCounts}) and emits a
   * {@link MalformedPayloadError} on `error$`, once per dispatch however many consumers report it. Returns the error,
   * or one naming `request` for a request that fails because of it. Consumers of `dispatch$` (services, handlers)
   * call it instead of throwing: a malformed payload never ends a subscription.
   */
  reportMalformed(event: GatewayDispatch, problem: string, request: string | null = null): MalformedPayloadError {
    const report = { shardId: event.shardId, event: event.t, sequence: event.s, problem };
    if (!this.reported.has(event)) {
      this.reported.add(event);
      let byEvent = this.malformed.get(event.shardId);
      if (!byEvent) this.malformed.set(event.shardId, (byEvent = new Map()));
      byEvent.set(event.t, (byEvent.get(event.t) ?? 0) + 1);
      this.errorSubject.next(new MalformedPayloadError(report));
    }
    return new MalformedPayloadError(report, request);
  }

  /** Malformed dispatches reported so far (see {@link reportMalformed}), per shard and event name. */
  malformedCounts(): { shardId: number; event: string; count: number }[] {
    return [...this.malformed].flatMap(([shardId, byEvent]) => [...byEvent].map(([event, count]) => ({ shardId, event, count })));
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

  /**
   * With `startTimeout`, settles `started` or, when the deadline passes first, closes the shards (resumably: the
   * ready ones keep their sessions) and rejects with a {@link GatewayStartTimeoutError} that says what each shard
   * that is not ready is doing.
   */
  private withStartDeadline(started: Promise<void>): Promise<void> {
    const timeoutMs = this.options.startTimeout;
    if (timeoutMs === undefined) return started;
    return new Promise<void>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        const waiting = this.info().filter((shard) => shard.state !== ShardState.Ready);
        const error = new GatewayStartTimeoutError(timeoutMs, waiting, this.entries.size === 0);
        // Closing the shards rejects `started` too: the deadline's error is the one reported.
        const fail = () => reject(error);
        this.downResumable().then(fail, fail);
      }, timeoutMs);
      started.then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (error: unknown) => {
          clearTimeout(timer);
          if (!timedOut) reject(error);
        },
      );
    });
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
    const given = this.givenSessions;
    this.givenSessions = null;
    for (const [id, session] of given ?? []) await this.storeCall(() => this.sessionStore.set(id, session));

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
      clock: this.clock,
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
      onUnreadable: (event, problem) => this.reportMalformed(event, problem),
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
    const guilds = new GuildAvailability(
      id,
      this.options.guildReadyTimeout ?? 15_000,
      (event) => this.guildsReadySubject.next(event),
      (event, problem) => this.reportMalformed(event, problem),
      this.clock,
    );
    const subscriptions = [
      shard.dispatch$.subscribe((event) => {
        // Bookkeeping never stops the event: whatever it throws is reported, and the event is still delivered.
        try {
          guilds.handle(event);
          if (event.t === 'READY' || event.t === 'RESUMED') this.saveSession(shard);
        } catch (error) {
          this.reportMalformed(event, `could not be read: ${(error as Error)?.message ?? String(error)}`);
        }
        this.dispatchSubject.next(event);
        this.checkpointer?.touch(id);
      }),
      shard.state$.subscribe((state) => {
        if (state === ShardState.FatallyClosed) {
          startOrder.forget(id);
          void this.storeCall(() => this.sessionStore.delete(id));
        }
        if (state === ShardState.Disconnected) this.warnOnFailedAttempts(shard);
        this.stateSubject.next({ shardId: id, state });
      }),
      // Debug lines may quote the server (a close reason): redacted, as they are in worker threads.
      shard.debug$.subscribe((message) => this.debugSubject.next({ shardId: id, message: redactToken(message, this.#token) })),
      shard.error$.subscribe((error) => this.errorSubject.next(error)),
    ];
    this.entries.set(id, { shard, guilds, subscriptions });
  }

  /**
   * Reports on `error$` (a WARN in Nest) a shard that has failed {@link WARN_AFTER_FAILED_ATTEMPTS} connection
   * attempts in a row, and every {@link WARN_EVERY_FAILED_ATTEMPTS} after that, with its last error (which names
   * the URL it could not reach). The shard goes on retrying with backoff.
   */
  private warnOnFailedAttempts(shard: Shard): void {
    const { reconnectAttempts: attempts, lastError } = shard.info();
    if (attempts < WARN_AFTER_FAILED_ATTEMPTS || (attempts - WARN_AFTER_FAILED_ATTEMPTS) % WARN_EVERY_FAILED_ATTEMPTS !== 0) return;
    this.errorSubject.next(
      new Error(`Shard ${shard.id} is not connected after ${attempts} attempts in a row (retrying with backoff); last error: ${lastError ?? 'none recorded'}`),
    );
  }

  private saveSession(shard: Shard): void {
    const session = this.handledSession(shard);
    if (session) void this.storeCall(() => this.sessionStore.set(shard.id, session));
  }

  /** The shard's session, its sequence lowered to just below the oldest event whose handling has not settled. */
  private handledSession(shard: Shard): ShardSession | null {
    const session = shard.session;
    if (!session) return null;
    const oldest = this.handling?.oldestUnsettled(shard.id) ?? null;
    if (oldest !== null && session.sequence !== null && oldest <= session.sequence) return { ...session, sequence: oldest - 1 };
    return session;
  }

  /** Saves the handled sequence of `ids` (those ready and changed since their last checkpoint) and flushes the store. */
  private async checkpoint(ids: number[]): Promise<void> {
    let changed = false;
    try {
      for (const id of ids) {
        const shard = this.entries.get(id)?.shard;
        if (!shard || shard.state !== ShardState.Ready) continue;
        const session = this.handledSession(shard);
        if (!session) continue;
        const key = `${session.sessionId}:${session.sequence}`;
        if (this.checkpointed.get(id) === key) continue;
        this.checkpointed.set(id, key);
        changed = true;
        await this.sessionStore.set(id, session);
      }
      if (changed && this.sessionStore.flush) await this.sessionStore.flush();
      this.checkpointFailing = false;
    } catch (error) {
      // Reported once until a checkpoint succeeds again: with the store unreachable, every event would report it.
      for (const id of ids) this.checkpointed.delete(id);
      if (!this.checkpointFailing) this.errorSubject.next(new Error(`Session store failed: ${(error as Error).message}`));
      this.checkpointFailing = true;
    }
  }

  private startSaving(): void {
    this.checkpointer?.start();
    const every = this.options.sessionSaveIntervalMs ?? 60_000;
    this.saveTimer = this.clock.setInterval(() => {
      for (const { shard } of this.entries.values()) if (shard.state === ShardState.Ready) this.saveSession(shard);
      void this.flushStore();
    }, every);
    this.saveTimer.unref();
  }

  private stopSaving(): void {
    this.checkpointer?.stop();
    if (this.saveTimer) this.clock.clearInterval(this.saveTimer);
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

/** Checks `options.sessions` and returns them by shard id (null when not given). */
function validateSessions(sessions: ClusterOptions['sessions']): Map<number, ShardSession> | null {
  if (sessions === undefined) return null;
  if (typeof sessions !== 'object' || sessions === null) throw new GatewayOptionsError('sessions', 'must be an object of sessions by shard id');
  const result = new Map<number, ShardSession>();
  for (const [key, value] of Object.entries(sessions)) {
    const id = Number(key);
    const at = `sessions[${key}]`;
    if (!Number.isInteger(id) || id < 0 || String(id) !== key) throw new GatewayOptionsError(at, 'must be keyed by a shard id (an integer >= 0)');
    const session = value as Partial<ShardSession> | null;
    if (typeof session !== 'object' || session === null) throw new GatewayOptionsError(at, 'must be { sessionId, sequence, resumeUrl }');
    if (typeof session.sessionId !== 'string' || session.sessionId === '') throw new GatewayOptionsError(`${at}.sessionId`, 'must be a non-empty string');
    if (session.sequence !== null && (!Number.isInteger(session.sequence) || session.sequence! < 0)) {
      throw new GatewayOptionsError(`${at}.sequence`, 'must be an integer >= 0 or null');
    }
    if (typeof session.resumeUrl !== 'string' || !/^wss?:\/\/./.test(session.resumeUrl)) {
      throw new GatewayOptionsError(`${at}.resumeUrl`, 'must be a ws:// or wss:// URL');
    }
    result.set(id, { ...(session as ShardSession) });
  }
  return result;
}

/**
 * Checks cluster options the way the `Cluster` constructor does, without creating anything.
 * @throws {@link GatewayOptionsError} naming the first invalid option.
 */
export function validateClusterOptions(options: ClusterOptions): void {
  validateShardScheme(options?.shards);
  resolveShardOptions({ ...options, id: 0, total: 1, gatewayUrl: options.gatewayUrl });
  const sequenceSave = options.sequenceSaveIntervalMs;
  if (sequenceSave !== undefined && sequenceSave !== null && (!Number.isInteger(sequenceSave) || sequenceSave < 0)) {
    throw new GatewayOptionsError('sequenceSaveIntervalMs', `must be an integer >= 0 or null, got ${typeof sequenceSave === 'number' ? sequenceSave : typeof sequenceSave}`);
  }
  for (const key of ['identifyWindowMs', 'sessionSaveIntervalMs', 'guildReadyTimeout', 'startTimeout'] as const) {
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
  validateSessions(options.sessions);
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

  refund(shardId: number): void {
    this.queue.refund?.(shardId);
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
