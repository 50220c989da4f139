import type { DynamicModule, INestApplicationContext } from '@nestjs/common';
import {
  GatewayIntentBits,
  GatewayOpcodes,
  type APIUser,
  type GatewayGuildCreateDispatchData,
  type GatewayGuildMemberUpdateDispatchData,
  type GatewayMessageCreateDispatchData,
  type GatewayMessageReactionAddDispatchData,
  type GatewayPresenceUpdateData,
  type GatewayRequestGuildMembersData,
  type GatewayVoiceStateUpdateData,
} from 'discord-api-types/v10';
import { Cluster } from '../../core/cluster/cluster';
import { DEFAULT_GATEWAY_NAME, resolveGatewayName } from '../constants/gateway-tokens';
import { findGateway } from '../gateway-lookup';
import { shardIdForGuild } from '../../core/cluster/resolve-shard-scheme';
import { GatewayEventRouter, type GatewayEventOutcome } from '../gateway-event-router';
import { GatewayModule } from '../gateway.module';
import type { GatewayEventData } from '../../core/interfaces/gateway-events.interface';
import type { GatewayModuleOptions } from '../interfaces/gateway-module-options.interface';
import { LocalGateway } from '../../core/testing/local-gateway';
import type { LocalGatewayOptions } from '../../core/testing/local-gateway-options.interface';
import {
  createGuild,
  createGuildMemberUpdate,
  createMessage,
  createReactionAdd,
  type CreateGuildOptions,
  type CreateMessageOptions,
} from '../../core/testing/payload-factories';
import type { RecordedFrame } from '../../core/testing/recorded-frame.interface';
import { SHORT_SHARD_TIMINGS } from '../../core/testing/short-shard-timings.constant';

/** Intents a testing gateway identifies with unless told otherwise: the usual ones of a bot, privileged included. */
export const TESTING_GATEWAY_INTENTS =
  GatewayIntentBits.Guilds |
  GatewayIntentBits.GuildMembers |
  GatewayIntentBits.GuildVoiceStates |
  GatewayIntentBits.GuildPresences |
  GatewayIntentBits.GuildMessages |
  GatewayIntentBits.GuildMessageReactions |
  GatewayIntentBits.DirectMessages |
  GatewayIntentBits.MessageContent;

/** Options of {@link createTestingGateway} and `GatewayTestingModule.forRoot`. */
export interface TestingGatewayOptions {
  /**
   * Name of the gateway the kit drives (`GatewayModuleOptions.name`), for apps with several bots: one kit, with its
   * own local gateway and token, per gateway. @defaultValue `'default'`
   */
  name?: string;
  /** Shards the bot runs (the local gateway recommends this many). @defaultValue `1` */
  shards?: number;
  /** Guilds the bot is in: each shard's READY lists its own, then a GUILD_CREATE arrives for each. @defaultValue `[]` */
  guilds?: string[];
  /** Members of every guild, answered to member requests (op 8). @defaultValue `0` */
  membersPerGuild?: number;
  /** Intents the bot identifies with. @defaultValue {@link TESTING_GATEWAY_INTENTS} */
  intents?: number;
  /** `heartbeat_interval` of the local gateway, ms. @defaultValue `500` */
  heartbeatInterval?: number;
  /** How long `emit` and the `waitFor...` methods wait before they reject, ms. @defaultValue `5000` */
  timeoutMs?: number;
  /** Further options of the {@link LocalGateway} (they win over the ones above). */
  localGateway?: LocalGatewayOptions;
  /** Further `GatewayModule` options (they win over the kit's short timings). */
  module?: Partial<GatewayModuleOptions>;
}

/** Options of {@link TestingGateway.emit}. */
export interface EmitOptions {
  /** Shard that receives the event. @defaultValue the shard of the data's `guild_id` (`id` for GUILD_*), or 0 */
  shardId?: number;
  /** Wait until the bot's handlers of this event have settled. @defaultValue `true` */
  wait?: boolean;
  /** How long to wait, ms. @defaultValue the kit's `timeoutMs` */
  timeoutMs?: number;
}

/** An event the kit pushed into a shard. */
export interface EmittedEvent<T = unknown> {
  event: string;
  shardId: number;
  /** Its sequence number in the shard's session. */
  sequence: number;
  data: T;
  /** Handlers it was delivered to; null when the shard skipped it undecoded (no handler asked for it) or `wait` was false. */
  handlers: number | null;
  /** Errors thrown or rejected by those handlers (guard refusals excluded). */
  errors: Error[];
}

/** Options of {@link TestingGateway.message}: the factory's options, the author, and where to send it. */
export interface TestMessageOptions extends CreateMessageOptions, EmitOptions {
  /** The author. @defaultValue a generated user who is never a bot */
  author?: APIUser;
}

/** Something that resolves providers, such as `INestApplication`, `INestApplicationContext` or `TestingModule`. */
export type ProviderResolver = Pick<INestApplicationContext, 'get'>;

/** Module options that keep a test fast: short windows, timeouts and backoff. */
const SHORT_TIMINGS: Partial<GatewayModuleOptions> = {
  ...SHORT_SHARD_TIMINGS,
  identifyWindowMs: 50,
  guildReadyTimeout: 1_000,
  memberRequestCooldownMs: 100,
};

interface Waiter {
  resolve: (outcome: GatewayEventOutcome | null) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

const GUILD_EVENTS_KEYED_BY_ID = new Set(['GUILD_CREATE', 'GUILD_UPDATE', 'GUILD_DELETE']);

/**
 * A local gateway wired to a bot's own Nest app, for the bot's tests: push realistic events into any shard, wait
 * until the handlers have run, read what the bot sent back. Uses no test-runner API, so it works with Node's test
 * runner, Jest and Vitest alike.
 *
 * ```ts
 * const kit = await createTestingGateway({ guilds: [GUILD] });
 * const app = await NestFactory.createApplicationContext(BotModule.register(kit.options));
 * kit.attach(app);
 * await kit.message('!ping', { guildId: GUILD });
 * expect(kit.presenceUpdates()).toHaveLength(1);
 * await app.close();
 * await kit.close();
 * ```
 */
export class TestingGateway {
  /** `GatewayModule` options pointed at the local gateway (token, REST API, intents) with short timings. */
  readonly options: GatewayModuleOptions;
  /** Default wait of `emit` and the `waitFor...` methods, ms. */
  readonly timeoutMs: number;
  /** Name of the gateway it drives. */
  readonly name: string;

  private cluster: Cluster | null = null;
  private router: GatewayEventRouter | null = null;
  private unobserve: (() => void) | null = null;
  private readonly waiters = new Map<string, Waiter>();
  private readonly defaultGuildId: string | undefined;
  private mark = 0;
  private seed = 0;
  private closed = false;

  private constructor(
    /** The local gateway itself, for faults: `reconnect`, `closeShard`, `dropShard`, `invalidateSession`... */
    readonly gateway: LocalGateway,
    options: TestingGatewayOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.defaultGuildId = options.guilds?.[0];
    this.name = resolveGatewayName(options.name);
    this.options = {
      ...(this.name === DEFAULT_GATEWAY_NAME ? {} : { name: this.name }),
      token: gateway.token,
      intents: options.intents ?? TESTING_GATEWAY_INTENTS,
      apiUrl: gateway.apiUrl,
      ...SHORT_TIMINGS,
      ...options.module,
    };
  }

  /** Starts a local gateway on 127.0.0.1. Wire the app with {@link options} or {@link module}, then {@link attach} it. */
  static async start(options: TestingGatewayOptions = {}): Promise<TestingGateway> {
    const gateway = await LocalGateway.start({
      shards: options.shards ?? 1,
      guilds: options.guilds ?? [],
      membersPerGuild: options.membersPerGuild ?? 0,
      heartbeatInterval: options.heartbeatInterval ?? 500,
      memberRequestCooldownMs: 100,
      commandWindowMs: 6_000,
      ...options.localGateway,
    });
    return new TestingGateway(gateway, options);
  }

  /**
   * `GatewayModule.forRoot` with {@link options} (plus `extra`), for a test module's `imports`. Global unless
   * `global: false`, so that handlers in any module of the test get `ShardService` and `ClusterService`.
   */
  module(extra: Partial<GatewayModuleOptions> & { global?: boolean } = {}): DynamicModule {
    return GatewayModule.forRoot({ ...this.options, global: true, ...extra });
  }

  /**
   * Binds the kit to an initialised app (or testing module) that runs `GatewayModule` on this gateway (the one
   * named {@link name}), so that
   * `emit` can wait for its handlers. Returns the kit.
   */
  attach(app: ProviderResolver): this {
    this.unobserve?.();
    const { cluster, router } = findGateway(app, this.name, 'TestingGateway');
    this.cluster = cluster;
    this.router = router;
    this.unobserve = router.observe({ eventSettled: (outcome) => this.onEventSettled(outcome) });
    return this;
  }

  /** True once {@link attach} has run. */
  get attached(): boolean {
    return this.router !== null;
  }

  /** The shard that receives a guild's events. */
  shardIdForGuild(guildId: string): number {
    return shardIdForGuild(guildId, this.requireCluster().total);
  }

  /**
   * Pushes a dispatch into a shard: the one given, else the one that owns the data's `guild_id` (`id` for
   * GUILD_CREATE/UPDATE/DELETE), else shard 0. Resolves once every handler of the event has settled, and once the
   * gateway has received the commands those handlers sent (presence, voice state, member requests...). Rejects when
   * that takes longer than `timeoutMs`.
   */
  async emit<K extends string>(event: K, data: GatewayEventData<K>, options: EmitOptions = {}): Promise<EmittedEvent<GatewayEventData<K>>> {
    const cluster = this.requireCluster();
    const shardId = options.shardId ?? this.routeShard(event, data);
    const sentBefore = this.commandsSent();
    const sequence = this.gateway.dispatch(shardId, event, data);
    const emitted: EmittedEvent<GatewayEventData<K>> = { event, shardId, sequence, data, handlers: null, errors: [] };
    if (options.wait === false) return emitted;
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const filter = cluster.dispatchFilter;
    const outcome =
      filter && !filter.wants(event)
        ? await this.waitForSequence(shardId, sequence, event, timeoutMs)
        : await this.waitForOutcome(shardId, sequence, event, timeoutMs);
    if (outcome) {
      emitted.handlers = outcome.handlers;
      emitted.errors = outcome.errors;
    }
    await this.flush(sentBefore, timeoutMs);
    return emitted;
  }

  /** Sends a MESSAGE_CREATE from a human user (built with `createMessage`), in the first guild unless told otherwise. */
  message(content: string, options: TestMessageOptions = {}): Promise<EmittedEvent<GatewayMessageCreateDispatchData>> {
    const { shardId, wait, timeoutMs, author, ...factory } = options;
    const message = createMessage(this.nextSeed(), { guildId: this.defaultGuildId, mentions: 0, ...factory, content });
    const human: APIUser = { ...message.author };
    delete human.bot;
    return this.emit('MESSAGE_CREATE', { ...message, author: author ?? human }, { shardId, wait, timeoutMs });
  }

  /** Sends a GUILD_CREATE of a guild with channels, roles and members (built with `createGuild`): the bot joined it. */
  guild(options: CreateGuildOptions & EmitOptions = {}): Promise<EmittedEvent<GatewayGuildCreateDispatchData>> {
    const { shardId, wait, timeoutMs, ...factory } = options;
    return this.emit('GUILD_CREATE', createGuild(this.nextSeed(), factory), { shardId, wait, timeoutMs });
  }

  /** Sends a GUILD_MEMBER_UPDATE (built with `createGuildMemberUpdate`), with `overrides` applied. */
  memberUpdate(
    guildId: string,
    overrides: Partial<GatewayGuildMemberUpdateDispatchData> = {},
    options: EmitOptions = {},
  ): Promise<EmittedEvent<GatewayGuildMemberUpdateDispatchData>> {
    return this.emit('GUILD_MEMBER_UPDATE', { ...createGuildMemberUpdate(this.nextSeed(), guildId), ...overrides }, options);
  }

  /** Sends a MESSAGE_REACTION_ADD (built with `createReactionAdd`), with `overrides` applied. */
  reaction(
    guildId: string,
    overrides: Partial<GatewayMessageReactionAddDispatchData> = {},
    options: EmitOptions = {},
  ): Promise<EmittedEvent<GatewayMessageReactionAddDispatchData>> {
    return this.emit('MESSAGE_REACTION_ADD', { ...createReactionAdd(this.nextSeed(), guildId), ...overrides }, options);
  }

  /** Resolves once no handler promise is pending (for events pushed some other way, e.g. replays after a resume). */
  idle(): Promise<void> {
    return this.requireRouter().idle();
  }

  /** Frames the bot sent since the start (or the last {@link clearSent}), optionally only of one opcode and shard. */
  sent(op?: number, shardId?: number): RecordedFrame[] {
    return this.gateway.frames
      .slice(this.mark)
      .filter((f) => (op === undefined || f.op === op) && (shardId === undefined || f.shardId === shardId));
  }

  /** Presence updates (op 3) the bot sent. */
  presenceUpdates(shardId?: number): GatewayPresenceUpdateData[] {
    return this.sent(GatewayOpcodes.PresenceUpdate, shardId).map((f) => f.d as GatewayPresenceUpdateData);
  }

  /** Voice state updates (op 4) the bot sent. */
  voiceStates(shardId?: number): GatewayVoiceStateUpdateData[] {
    return this.sent(GatewayOpcodes.VoiceStateUpdate, shardId).map((f) => f.d as GatewayVoiceStateUpdateData);
  }

  /** Guild member requests (op 8) the bot sent. */
  memberRequests(shardId?: number): GatewayRequestGuildMembersData[] {
    return this.sent(GatewayOpcodes.RequestGuildMembers, shardId).map((f) => f.d as GatewayRequestGuildMembersData);
  }

  /** The first presence update (sent so far or still to come) that matches. */
  waitForPresenceUpdate(
    predicate: (presence: GatewayPresenceUpdateData) => boolean = () => true,
    timeoutMs = this.timeoutMs,
  ): Promise<GatewayPresenceUpdateData> {
    return this.waitForSent(GatewayOpcodes.PresenceUpdate, predicate, timeoutMs);
  }

  /** The first voice state update (sent so far or still to come) that matches. */
  waitForVoiceState(
    predicate: (state: GatewayVoiceStateUpdateData) => boolean = () => true,
    timeoutMs = this.timeoutMs,
  ): Promise<GatewayVoiceStateUpdateData> {
    return this.waitForSent(GatewayOpcodes.VoiceStateUpdate, predicate, timeoutMs);
  }

  /** The first member request (sent so far or still to come) that matches. */
  waitForMemberRequest(
    predicate: (request: GatewayRequestGuildMembersData) => boolean = () => true,
    timeoutMs = this.timeoutMs,
  ): Promise<GatewayRequestGuildMembersData> {
    return this.waitForSent(GatewayOpcodes.RequestGuildMembers, predicate, timeoutMs);
  }

  /** Forgets the frames sent so far: `sent()`, `presenceUpdates()`... and the `waitFor...` methods look only after this. */
  clearSent(): void {
    this.mark = this.gateway.frames.length;
  }

  /** Stops waiting, detaches from the app and closes the local gateway. Close the app first. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unobserve?.();
    this.unobserve = null;
    for (const waiter of this.waiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error('The testing gateway was closed'));
    }
    this.waiters.clear();
    await this.gateway.close();
  }

  // ---- internals ----------------------------------------------------------------------------------

  private requireCluster(): Cluster {
    if (!this.cluster) throw new Error('TestingGateway: attach(app) first, once the app is initialised');
    return this.cluster;
  }

  private requireRouter(): GatewayEventRouter {
    if (!this.router) throw new Error('TestingGateway: attach(app) first, once the app is initialised');
    return this.router;
  }

  private nextSeed(): number {
    return ++this.seed;
  }

  private routeShard(event: string, data: unknown): number {
    const d = data as { guild_id?: unknown; id?: unknown } | null;
    const guildId = typeof d?.guild_id === 'string' ? d.guild_id : GUILD_EVENTS_KEYED_BY_ID.has(event) && typeof d?.id === 'string' ? d.id : null;
    return guildId === null ? 0 : this.shardIdForGuild(guildId);
  }

  private onEventSettled(outcome: GatewayEventOutcome): void {
    const key = `${outcome.shardId}:${outcome.sequence}:${outcome.event}`;
    const waiter = this.waiters.get(key);
    if (!waiter) return;
    this.waiters.delete(key);
    clearTimeout(waiter.timer);
    waiter.resolve(outcome);
  }

  private waitForOutcome(shardId: number, sequence: number, event: string, timeoutMs: number): Promise<GatewayEventOutcome | null> {
    const key = `${shardId}:${sequence}:${event}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(new Error(`TestingGateway: the handlers of ${event} #${sequence} on shard ${shardId} did not settle within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(key, { resolve, reject, timer });
    });
  }

  /** For events the shards skip undecoded (no handler wants them): waits until the shard has read past them. */
  private async waitForSequence(shardId: number, sequence: number, event: string, timeoutMs: number): Promise<null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const shard = this.requireCluster().shards.get(shardId);
      if ((shard?.info().sequence ?? -1) >= sequence) return null;
      if (this.closed || Date.now() > deadline) {
        throw new Error(`TestingGateway: shard ${shardId} did not receive ${event} #${sequence} within ${timeoutMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  private commandsSent(): Map<number, number> {
    return new Map([...this.requireCluster().shards].map(([id, shard]) => [id, shard.counters.commandsSent]));
  }

  /**
   * Makes sure the gateway has received the commands written since `before`: asks each shard that wrote some for a
   * heartbeat (op 1) and waits for its answer, which travels on the same socket behind those commands.
   */
  private async flush(before: Map<number, number>, timeoutMs: number): Promise<void> {
    const shards = [...this.requireCluster().shards].filter(([id, shard]) => shard.counters.commandsSent !== (before.get(id) ?? 0));
    await Promise.all(
      shards.map(async ([id]) => {
        const from = this.gateway.frames.length;
        try {
          this.gateway.requestHeartbeat(id);
        } catch {
          return; // no open connection: the commands went out on a connection that is gone
        }
        await this.gateway
          .waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat && f.shardId === id, timeoutMs, from)
          .catch(() => undefined);
      }),
    );
  }

  private waitForSent<T>(op: number, predicate: (d: T) => boolean, timeoutMs: number): Promise<T> {
    return this.gateway
      .waitForFrame((f) => f.op === op && predicate(f.d as T), timeoutMs, this.mark)
      .then((f) => f.d as T)
      .catch(() => {
        throw new Error(`TestingGateway: the bot sent no matching op ${op} within ${timeoutMs} ms`);
      });
  }
}

/**
 * Starts a {@link TestingGateway}: a local gateway on 127.0.0.1 plus the `GatewayModule` options that point at it.
 * Build the app with `kit.options` (or `kit.module()`), initialise it, then `kit.attach(app)`.
 */
export function createTestingGateway(options: TestingGatewayOptions = {}): Promise<TestingGateway> {
  return TestingGateway.start(options);
}
