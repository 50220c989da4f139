import type { APISoundboardSound, GatewaySendPayload, GatewayChannelInfoDispatchData } from 'discord-api-types/v10';
import { Subject, type Observable, type Subscription } from 'rxjs';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import { GatewayStartTimeoutError } from '../errors/gateway-start-timeout.error';
import { MalformedPayloadError } from '../errors/malformed-payload.error';
import type { Clock } from '../interfaces/clock.interface';
import type { ClusterOptions } from '../interfaces/cluster-options.interface';
import { realClock } from '../shard/real-clock';
import type { ForwardedDispatch } from '../interfaces/forwarded-dispatch.interface';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';
import type { IGatewayShard } from '../interfaces/gateway-shard.interface';
import type { IShardingStrategy } from '../interfaces/sharding-strategy.interface';
import type { HandshakeKind, ShardOptions } from '../interfaces/shard-options.interface';
import type { OwnershipEvent } from '../interfaces/shard-ownership-event.interface';
import type { ShardSession } from '../interfaces/shard-session.interface';
import { InMemorySessionStore } from '../session/in-memory-session-store';
import type { DispatchFilter } from '../shard/dispatch-filter';
import type { ShardInfo } from '../shard/shard';
import { ShardState } from '../shard/shard-state';
import { ChannelInfoRequests, type RequestChannelInfoOptions } from './channel-info-requests';
import { GuildAvailability, type GuildsReadyEvent } from './guild-availability';
import { MemberRequests, type GuildMembersResult, type RequestGuildMembersOptions } from './member-requests';
import { shardIdForGuild } from './resolve-shard-scheme';
import { SessionSaver } from './session-saver';
import { SoundboardRequests, type RequestSoundboardSoundsOptions } from './soundboard-requests';
import { resolveStartPlan } from './start-plan';
import { StartOrderQueue } from './start-order-queue';
import { validateClusterOptions, validateSessions } from './validate-cluster-options';
import type { IHandlingTracker } from '../interfaces/handling-tracker.interface';
import { WorkerPool } from '../../workers/worker-pool';
import { redactToken } from '../../workers/worker-messages';
import { resolveShardingStrategy } from './resolve-sharding-strategy';

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
  shard: IGatewayShard;
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
  /** Every session store call: saves on READY/RESUMED, periodic and sequence saves, reads at start. */
  private readonly sessions: SessionSaver;
  private readonly entries = new Map<number, ShardEntry>();
  /** Per shard, who keeps its reading paused (see {@link pause}). */
  private readonly pauseHolders = new Map<number, Set<string>>();
  private readonly dispatchSubject = new Subject<GatewayDispatch>();
  private readonly forwardedSubject = new Subject<ForwardedDispatch>();
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
  private starting: Promise<void> | null = null;
  private shardTotal = 0;
  /** Settles once `up()` knows the shard count, gateway URL and identify queue (what `addShard` needs). */
  private prepared: Promise<void> | null = null;
  private gatewayUrl = '';
  private startOrder: StartOrderQueue | null = null;
  /** Shards `addShard` is reading a session for: reserved, not yet in `entries`. */
  private readonly adding = new Set<number>();
  /** What runs the shards (`strategy`), once shards are created. */
  private runner: IShardingStrategy | null = null;
  /** `options.sessions`, until the first `up()` has written them to the session store. */
  private givenSessions: Map<number, ShardSession> | null;
  private channelInfo: ChannelInfoRequests | null = null;
  private memberRequests: MemberRequests | null = null;
  private soundboardRequests: SoundboardRequests | null = null;
  /** Malformed dispatches reported, per shard id and event name. */
  private readonly malformed = new Map<number, Map<string, number>>();
  /** Dispatches already reported as malformed: each is reported (logged, counted) once, however many consumers see it. */
  private readonly reported = new WeakSet<GatewayDispatch>();

  /** Every dispatch of every shard that the dispatch filter wants (all without one), each carrying its `shardId`. */
  readonly dispatch$: Observable<GatewayDispatch> = this.dispatchSubject.asObservable();
  /**
   * The dispatches the filter forwards undecoded (`DispatchFilter.forward`), as the payload bytes, in order with `dispatch$`
   * per shard: what `delivery: 'redis-streams'` publishes without parsing.
   */
  readonly forwarded$: Observable<ForwardedDispatch> = this.forwardedSubject.asObservable();
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
    this.clock = options.clock ?? realClock;
    this.sessions = new SessionSaver({
      clock: this.clock,
      store: options.sessionStore ?? new InMemorySessionStore(),
      sessionSaveIntervalMs: options.sessionSaveIntervalMs,
      sequenceSaveIntervalMs: options.sequenceSaveIntervalMs,
      shards: () => [...this.entries.values()].map((entry) => entry.shard),
      shard: (id) => this.entries.get(id)?.shard,
      onError: (error) => this.errorSubject.next(error),
    });
  }

  /**
   * Sets what says which events are still being handled (the Nest module sets its event router): saved sequences
   * then stay below the oldest event whose handling has not settled. Without one, an event counts as handled once
   * {@link dispatch$} has delivered it.
   */
  trackHandling(tracker: IHandlingTracker | null): void {
    this.sessions.trackHandling(tracker);
  }

  /**
   * Tells the cluster that the handling of some events of `shardId` settled (its handled sequence may have moved),
   * so that it is saved within `sequenceSaveIntervalMs`. Called by the {@link IHandlingTracker}.
   */
  sequenceHandled(shardId: number): void {
    this.sessions.touch(shardId);
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
  get shards(): ReadonlyMap<number, IGatewayShard> {
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
    let session = options.session;
    if (session === undefined) {
      this.adding.add(id);
      try {
        const saved = await this.sessions.read(id);
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
    this.pauseHolders.delete(id);
    this.startOrder?.forget(id);
    let session: ShardSession | null;
    try {
      session = await entry.shard.close({ resumable: options.resumable });
    } finally {
      this.detach(entry);
    }
    if (options.updateStore !== false) {
      if (session) await this.sessions.write(id, session);
      else await this.sessions.remove(id);
      await this.sessions.flush();
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
      if (session) await this.sessions.write(id, session);
    }
    await this.sessions.flush();
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
    this.sessions.stop();
    await Promise.all(
      [...this.entries].map(async ([id, entry]) => {
        await entry.shard.close();
        await this.sessions.remove(id);
      }),
    );
    await this.sessions.flush();
    await this.stopPool();
    this.reset();
  }

  /** Closes every shard resumably, saves and returns their sessions. */
  async downResumable(): Promise<ResumableSessions> {
    this.sessions.stop();
    const result: ResumableSessions = {};
    await Promise.all(
      [...this.entries].map(async ([id, entry]) => {
        const session = await entry.shard.close({ resumable: true });
        if (!session) return;
        await this.sessions.write(id, session);
        result[id] = { sessionId: session.sessionId, sequence: session.sequence, resumeUrl: session.resumeUrl };
      }),
    );
    await this.sessions.flush();
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
    await this.runner?.refresh(timeoutMs);
    return this.info();
  }

  /** The worker threads' pool with `strategy: { type: 'workers' }` (null in-process, or before `up()`). */
  get workerPool(): WorkerPool | null {
    return this.runner instanceof WorkerPool ? this.runner : null;
  }

  /** Reconnects one shard now: resumes when its session allows, identifies otherwise. */
  restart(shardId: number): Promise<void> {
    try {
      return this.entry(shardId).shard.restart();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Stops reading one shard's socket (backpressure); heartbeats go on. Each `holder` keeps it paused until it calls
   * {@link resume} itself: the router's handler limit, a stream publisher waiting for Redis and your own code can
   * pause one shard at once, and reading resumes when the last of them lets go.
   * @param holder - who pauses. @defaultValue `'user'`
   */
  pause(shardId: number, holder = 'user'): void {
    const entry = this.entries.get(shardId);
    if (!entry) return;
    let holders = this.pauseHolders.get(shardId);
    if (!holders) this.pauseHolders.set(shardId, (holders = new Set()));
    holders.add(holder);
    entry.shard.pause();
  }

  /**
   * Lets go of `holder`'s pause of one shard; its socket is read again once no holder keeps it paused.
   * @param holder - who paused it. @defaultValue `'user'`
   */
  resume(shardId: number, holder = 'user'): void {
    const holders = this.pauseHolders.get(shardId);
    holders?.delete(holder);
    if (holders && holders.size > 0) return;
    this.pauseHolders.delete(shardId);
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
   * Requests guild members (op 8) through the guild's shard (or `options.shardId`) and collects every
   * `GUILD_MEMBERS_CHUNK` of the answer. Honours `RATE_LIMITED` (waits `retry_after`, then asks again) and
   * Discord's limit of one full-list request per guild per `memberRequestCooldownMs` (a second one waits its turn).
   */
  requestGuildMembers(options: RequestGuildMembersOptions): Promise<GuildMembersResult> {
    this.memberRequests ??= new MemberRequests(this, this.options.memberRequestCooldownMs ?? 30_000);
    return this.memberRequests.request(options);
  }

  /**
   * Requests the soundboard sounds of guilds (op 31), through each guild's shard (or `shardId`), and collects one
   * `SOUNDBOARD_SOUNDS` per guild. The second argument is the timeout (ms) or {@link RequestSoundboardSoundsOptions}.
   */
  requestSoundboardSounds(
    guildIds: string[],
    timeoutOrOptions: number | RequestSoundboardSoundsOptions = {},
  ): Promise<Record<string, APISoundboardSound[]>> {
    this.soundboardRequests ??= new SoundboardRequests(this);
    return this.soundboardRequests.request(guildIds, timeoutOrOptions);
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
    const { total, ids, sessions, gatewayUrl, queue } = await resolveStartPlan(
      options,
      this.#token,
      this.sessions,
      () => {
        const given = this.givenSessions;
        this.givenSessions = null;
        return given;
      },
      (message) => this.debug(message),
    );
    this.shardTotal = total;
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
    this.sessions.start();
    this.debug(`starting shards [${ids.join(', ')}] of ${total}${sessions.size ? `, resuming ${sessions.size}` : ''}`);
    await Promise.all(ids.map((id) => this.entries.get(id)!.shard.connect()));
  }

  /** A shard, run where the `strategy` option says (the strategy is made with the first shard). */
  private createShard(options: ShardOptions): IGatewayShard {
    this.runner ??= resolveShardingStrategy(this.options.strategy, this.#token, {
      clusterOptions: this.options,
      filter: this.options.dispatchFilter,
      onError: (error) => this.errorSubject.next(error),
      onDebug: (message) => this.debug(message),
      onUnreadable: (event, problem) => this.reportMalformed(event, problem),
    });
    return this.runner.createShard(options);
  }

  private async stopPool(): Promise<void> {
    const runner = this.runner;
    this.runner = null;
    await runner?.stop();
  }

  private attach(shard: IGatewayShard, startOrder: StartOrderQueue): void {
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
          this.sessions.sessionEvent(shard, event);
        } catch (error) {
          this.reportMalformed(event, `could not be read: ${(error as Error)?.message ?? String(error)}`);
        }
        this.dispatchSubject.next(event);
        this.sessions.touch(id);
      }),
      shard.forwarded$.subscribe((event) => {
        this.forwardedSubject.next(event);
        this.sessions.touch(id);
      }),
      shard.state$.subscribe((state) => {
        if (state === ShardState.FatallyClosed) {
          startOrder.forget(id);
          void this.sessions.remove(id);
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
  private warnOnFailedAttempts(shard: IGatewayShard): void {
    const { reconnectAttempts: attempts, lastError } = shard.info();
    if (attempts < WARN_AFTER_FAILED_ATTEMPTS || (attempts - WARN_AFTER_FAILED_ATTEMPTS) % WARN_EVERY_FAILED_ATTEMPTS !== 0) return;
    this.errorSubject.next(
      new Error(`Shard ${shard.id} is not connected after ${attempts} attempts in a row (retrying with backoff); last error: ${lastError ?? 'none recorded'}`),
    );
  }

  private reset(): void {
    for (const entry of this.entries.values()) this.detach(entry);
    this.entries.clear();
    this.pauseHolders.clear();
    this.starting = null;
    this.prepared = null;
  }

  private detach(entry: ShardEntry): void {
    entry.guilds.stop();
    for (const subscription of entry.subscriptions) subscription.unsubscribe();
  }

  private debug(message: string): void {
    if (this.debugSubject.observed) this.debugSubject.next({ shardId: null, message });
  }
}
