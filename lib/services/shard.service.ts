import { randomBytes } from 'node:crypto';
import { Inject, Injectable, Optional } from '@nestjs/common';
// The gateway entry point alone: the full v10 index also loads every REST and payload module at run time.
import { GatewayOpcodes } from 'discord-api-types/gateway/v10';
import type {
  APIGuildMember,
  GatewayPresenceUpdateData,
  GatewaySendPayload,
  GatewayVoiceStateUpdateData,
  GatewayGuildMembersChunkDispatchData,
  APISoundboardSound,
  GatewayPresenceUpdate,
} from 'discord-api-types/v10';
import type { GatewayChannelInfoDispatchData } from 'discord-api-types/v10';
import type { RequestChannelInfoOptions } from '../cluster/channel-info-requests';
import { Cluster, type ClusterShardInfo } from '../cluster/cluster';
import { GATEWAY_MODULE_OPTIONS } from '../constants/gateway-module.constants';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import { ShardCommandError } from '../errors/shard-command.error';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';
import type { GatewayModuleOptions } from '../interfaces/gateway-module-options.interface';
import { GATEWAY_SCALE_OUT, type IGatewayScaleOut, type RemoteShardMethod } from '../interfaces/gateway-scale-out.interface';

/** Options of {@link ShardService.requestGuildMembers}. */
export interface RequestGuildMembersOptions {
  /** Guild to list. */
  guildId: string;
  /** Username prefix; `''` with `limit` 0 lists every member. @defaultValue `''` */
  query?: string;
  /** Most members to return; 0 means all (with an empty query). @defaultValue `0` */
  limit?: number;
  /** Specific members to fetch (at most 100), instead of `query`. */
  userIds?: string[];
  /** Include presences (needs the GUILD_PRESENCES intent). @defaultValue `false` */
  presences?: boolean;
  /** Give up after this long, ms. @defaultValue `30000` */
  timeoutMs?: number;
  /** Shard to send it through. @defaultValue the shard of `guildId` */
  shardId?: number;
  /**
   * The request's `nonce` (1 to 32 bytes, unique among this process's requests in flight), e.g. to match the
   * chunks in your own `GUILD_MEMBERS_CHUNK` handler. @defaultValue 24 random hex digits
   */
  nonce?: string;
}

/** Options of {@link ShardService.requestSoundboardSounds}. */
export interface RequestSoundboardSoundsOptions {
  /** Give up after this long, ms. @defaultValue `30000` */
  timeoutMs?: number;
  /** Shard to send every guild's request through. @defaultValue the shard of each guild */
  shardId?: number;
}

/** Options of {@link ShardService.requestChannelInfo}. */
export interface ShardRequestChannelInfoOptions extends RequestChannelInfoOptions {
  /** Shard to send it through. @defaultValue the shard of the guild */
  shardId?: number;
}

/** What a member request returned, all chunks together. */
export interface GuildMembersResult {
  guildId: string;
  nonce: string;
  members: APIGuildMember[];
  presences: GatewayPresenceUpdate[];
  notFound: string[];
}

const STATUSES = new Set(['online', 'dnd', 'idle', 'invisible', 'offline']);
const SNOWFLAKE = /^\d{1,20}$/;

/**
 * Commands to Discord through the bot's shards: presence, voice state, member and soundboard requests, raw
 * commands, and each shard's info.
 */
@Injectable()
export class ShardService {
  private readonly lastFullMemberRequest = new Map<string, number>();
  /** Nonces of the member requests in flight here. */
  private readonly memberNonces = new Set<string>();
  private readonly cooldownMs: number;

  constructor(
    private readonly cluster: Cluster,
    @Inject(GATEWAY_MODULE_OPTIONS) options: GatewayModuleOptions,
    @Optional() @Inject(GATEWAY_SCALE_OUT) private readonly scaleOut: IGatewayScaleOut | null = null,
  ) {
    this.cooldownMs = options.memberRequestCooldownMs ?? 30_000;
    this.scaleOut?.setHandler((method, shardId, args) => this.runHere(method, shardId, args));
  }

  /** Sets the bot's presence on every shard, or on one. */
  async setPresence(presence: GatewayPresenceUpdateData, shardId?: number): Promise<void> {
    if (typeof presence !== 'object' || presence === null) throw new GatewayOptionsError('presence', 'must be an object');
    if (!STATUSES.has(presence.status)) {
      throw new GatewayOptionsError('presence.status', `must be one of ${[...STATUSES].join(', ')}`);
    }
    if (!Array.isArray(presence.activities)) throw new GatewayOptionsError('presence.activities', 'must be an array');
    const payload: GatewaySendPayload = {
      op: GatewayOpcodes.PresenceUpdate,
      d: { since: presence.since ?? null, activities: presence.activities, status: presence.status, afk: presence.afk ?? false },
    };
    // With shard ownership, "every shard" is every shard of the bot, wherever it runs.
    const ids =
      shardId !== undefined ? [shardId]
      : this.scaleOut?.distributed ? Array.from({ length: this.cluster.total }, (_, id) => id)
      : [...this.cluster.shards.keys()];
    await Promise.all(ids.map((id) => this.sendTo(id, payload)));
  }

  /** Joins, moves or leaves (channel_id null) a voice channel, through the guild's shard (or `shardId`). */
  async updateVoiceState(state: GatewayVoiceStateUpdateData, shardId?: number): Promise<void> {
    requireSnowflake('voiceState.guild_id', state?.guild_id);
    if (state.channel_id !== null) requireSnowflake('voiceState.channel_id', state.channel_id);
    return this.sendTo(this.shardFor(state.guild_id, shardId), {
      op: GatewayOpcodes.VoiceStateUpdate,
      d: { guild_id: state.guild_id, channel_id: state.channel_id, self_mute: !!state.self_mute, self_deaf: !!state.self_deaf },
    });
  }

  /**
   * Requests guild members and collects every `GUILD_MEMBERS_CHUNK` of the answer. Honours `RATE_LIMITED`
   * (waits `retry_after`, then asks again) and Discord's limit of one full-list request per guild per 30 s
   * (a second one waits its turn).
   */
  async requestGuildMembers(options: RequestGuildMembersOptions): Promise<GuildMembersResult> {
    requireSnowflake('guildId', options?.guildId);
    const shardId = this.scaleOut?.distributed ? this.shardFor(options.guildId, options.shardId) : -1;
    if (shardId >= 0 && this.isRemote(shardId)) {
      // The chunks arrive on the owner's connection: the whole request runs there.
      const waitMs = (options.timeoutMs ?? 30_000) + this.cooldownMs + 5_000;
      return this.scaleOut!.request<GuildMembersResult>(shardId, 'requestGuildMembers', options, waitMs);
    }
    return this.requestGuildMembersHere(options);
  }

  private async requestGuildMembersHere(options: RequestGuildMembersOptions): Promise<GuildMembersResult> {
    requireSnowflake('guildId', options?.guildId);
    const userIds = options.userIds;
    if (userIds !== undefined) {
      if (!Array.isArray(userIds) || userIds.length === 0 || userIds.length > 100) {
        throw new GatewayOptionsError('userIds', 'must be an array of 1 to 100 user ids');
      }
      userIds.forEach((id, i) => requireSnowflake(`userIds[${i}]`, id));
    }
    const query = options.query ?? '';
    const limit = options.limit ?? 0;
    if (typeof query !== 'string') throw new GatewayOptionsError('query', 'must be a string');
    if (!Number.isInteger(limit) || limit < 0 || limit > 100_000) throw new GatewayOptionsError('limit', 'must be an integer >= 0');
    const timeoutMs = options.timeoutMs ?? 30_000;
    const guildId = options.guildId;
    const shardId = this.shardFor(guildId, options.shardId);
    const nonce = options.nonce ?? randomBytes(12).toString('hex');
    if (typeof nonce !== 'string' || nonce === '' || Buffer.byteLength(nonce) > 32) {
      throw new GatewayOptionsError('nonce', 'must be a string of 1 to 32 bytes');
    }
    if (this.memberNonces.has(nonce)) throw new GatewayOptionsError('nonce', 'is already used by a member request in flight');
    const fullList = userIds === undefined && query === '' && limit === 0;
    if (fullList) {
      const wait = (this.lastFullMemberRequest.get(guildId) ?? -Infinity) + this.cooldownMs - Date.now();
      this.lastFullMemberRequest.set(guildId, Date.now() + Math.max(0, wait));
      if (wait > 0) await sleep(wait);
    }
    this.cluster.dispatchFilter?.add('GUILD_MEMBERS_CHUNK', 'RATE_LIMITED');
    if (this.memberNonces.has(nonce)) throw new GatewayOptionsError('nonce', 'is already used by a member request in flight');
    this.memberNonces.add(nonce);
    const payload: GatewaySendPayload = {
      op: GatewayOpcodes.RequestGuildMembers,
      d: userIds
        ? { guild_id: guildId, user_ids: userIds, presences: !!options.presences, nonce }
        : { guild_id: guildId, query, limit, presences: !!options.presences, nonce },
    };
    const request = `the member request for guild ${guildId}`;
    return new Promise<GuildMembersResult>((resolve, reject) => {
      const result: GuildMembersResult = { guildId, nonce, members: [], presences: [], notFound: [] };
      const seen = new Set<number>();
      let retry: NodeJS.Timeout | null = null;
      const finish = (error?: Error) => {
        this.memberNonces.delete(nonce);
        subscription.unsubscribe();
        clearTimeout(timer);
        if (retry) clearTimeout(retry);
        if (error) reject(error);
        else resolve(result);
      };
      const timer = setTimeout(
        () => finish(new Error(`Member request for guild ${guildId} got no complete answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onChunk = (event: GatewayDispatch) => {
        const chunk = readMembersChunk(event.d, nonce);
        if (chunk === null) return;
        if (typeof chunk === 'string') return finish(this.cluster.reportMalformed(event, chunk, request));
        if (seen.has(chunk.chunkIndex)) return;
        seen.add(chunk.chunkIndex);
        // One by one: spreading a huge array into push() overflows the call stack.
        for (const member of chunk.members) result.members.push(member);
        for (const presence of chunk.presences) result.presences.push(presence);
        for (const id of chunk.notFound) result.notFound.push(id);
        if (seen.size >= chunk.chunkCount) finish();
      };
      const onRateLimited = (event: GatewayDispatch) => {
        const limited = readRateLimited(event.d, nonce);
        if (limited === null) return;
        if (typeof limited === 'string') return finish(this.cluster.reportMalformed(event, limited, request));
        if (retry) clearTimeout(retry);
        retry = setTimeout(() => {
          retry = null;
          this.cluster.send(shardId, payload).catch((error: Error) => finish(error));
        }, Math.min(Math.ceil(limited * 1000), timeoutMs));
      };
      const subscription = this.cluster.dispatch$.subscribe((event) => {
        if (event.shardId !== shardId) return;
        try {
          if (event.t === 'GUILD_MEMBERS_CHUNK') onChunk(event);
          else if (event.t === 'RATE_LIMITED') onRateLimited(event);
        } catch (error) {
          finish(this.cluster.reportMalformed(event, `could not be read: ${(error as Error)?.message ?? String(error)}`, request));
        }
      });
      this.cluster.send(shardId, payload).catch((error: Error) => finish(error));
    });
  }

  /**
   * Requests the soundboard sounds of guilds (op 31) and collects one `SOUNDBOARD_SOUNDS` per guild. The second
   * argument is the timeout (ms) or {@link RequestSoundboardSoundsOptions}.
   */
  async requestSoundboardSounds(
    guildIds: string[],
    timeoutOrOptions: number | RequestSoundboardSoundsOptions = {},
  ): Promise<Record<string, APISoundboardSound[]>> {
    const { timeoutMs = 30_000, shardId: explicitShard } = typeof timeoutOrOptions === 'number' ? { timeoutMs: timeoutOrOptions } : (timeoutOrOptions ?? {});
    if (!Array.isArray(guildIds) || guildIds.length === 0) throw new GatewayOptionsError('guildIds', 'must be a non-empty array');
    guildIds.forEach((id, i) => requireSnowflake(`guildIds[${i}]`, id));
    const byShard = new Map<number, string[]>();
    for (const id of guildIds) {
      const shardId = this.shardFor(id, explicitShard);
      byShard.set(shardId, [...(byShard.get(shardId) ?? []), id]);
    }
    this.cluster.dispatchFilter?.add('SOUNDBOARD_SOUNDS');
    const wanted = new Set(guildIds);
    const result: Record<string, APISoundboardSound[]> = {};
    const request = `the soundboard request for guilds ${guildIds.join(', ')}`;
    return new Promise((resolve, reject) => {
      const finish = (error?: Error) => {
        subscription.unsubscribe();
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(result);
      };
      const timer = setTimeout(() => finish(new Error(`Soundboard request got no answer for every guild within ${timeoutMs} ms`)), timeoutMs);
      const onSounds = (event: GatewayDispatch) => {
        const sounds = readSoundboardSounds(event.d, wanted);
        if (sounds === null) return;
        if (typeof sounds === 'string') return finish(this.cluster.reportMalformed(event, sounds, request));
        wanted.delete(sounds.guild_id);
        result[sounds.guild_id] = sounds.soundboard_sounds;
        if (wanted.size === 0) finish();
      };
      const subscription = this.cluster.dispatch$.subscribe((event) => {
        if (event.t !== 'SOUNDBOARD_SOUNDS' || !byShard.has(event.shardId)) return;
        try {
          onSounds(event);
        } catch (error) {
          finish(this.cluster.reportMalformed(event, `could not be read: ${(error as Error)?.message ?? String(error)}`, request));
        }
      });
      for (const [shardId, ids] of byShard) {
        this.cluster
          .send(shardId, { op: GatewayOpcodes.RequestSoundboardSounds, d: { guild_ids: ids } })
          .catch((error: Error) => finish(error));
      }
    });
  }

  /** Sends a raw command through one shard (through the process that owns it, with shard ownership). */
  send(shardId: number, command: GatewaySendPayload): Promise<void> {
    return this.sendTo(shardId, command);
  }

  /** Sends a raw command through the shard that receives `guildId`'s events. */
  async sendToGuild(guildId: string, command: GatewaySendPayload): Promise<void> {
    requireSnowflake('guildId', guildId);
    return this.sendTo(this.cluster.shardIdForGuild(guildId), command);
  }

  /**
   * Request Channel Info (op 43): the ephemeral info (voice status, voice start time) of a guild's channels, from the
   * `CHANNEL_INFO` reply. Through the guild's shard, or `options.shardId`; with shard ownership, on the process that
   * runs it.
   */
  async requestChannelInfo(guildId: string, options: ShardRequestChannelInfoOptions = {}): Promise<GatewayChannelInfoDispatchData> {
    requireSnowflake('guildId', guildId);
    const shardId = this.shardFor(guildId, options.shardId);
    if (this.isRemote(shardId)) {
      const waitMs = (options.timeoutMs ?? 30_000) + 5_000;
      return this.scaleOut!.request<GatewayChannelInfoDispatchData>(shardId, 'requestChannelInfo', { ...options, guildId, shardId }, waitMs);
    }
    return this.cluster.requestChannelInfo(guildId, { ...options, shardId });
  }

  /** `shardId` when given (checked to be a shard of the bot), else the shard of `guildId`. */
  private shardFor(guildId: string, shardId: number | undefined): number {
    if (shardId === undefined) return this.cluster.shardIdForGuild(guildId);
    const total = this.cluster.total;
    if (!Number.isInteger(shardId) || shardId < 0 || (total > 0 && shardId >= total)) {
      throw new GatewayOptionsError('shardId', `must be an integer from 0 to ${Math.max(0, total - 1)}`);
    }
    return shardId;
  }

  /** True when `shardId` runs in another process (shard ownership) and calls for it go through Redis. */
  private isRemote(shardId: number): boolean {
    return !!this.scaleOut?.distributed && !this.cluster.has(shardId);
  }

  private async sendTo(shardId: number, command: GatewaySendPayload): Promise<void> {
    if (this.isRemote(shardId)) await this.scaleOut!.request(shardId, 'send', command);
    else await this.cluster.send(shardId, command);
  }

  /** Runs a call another process forwarded for a shard of this one; never forwards it again. */
  private async runHere(method: RemoteShardMethod, shardId: number, args: unknown): Promise<unknown> {
    if (!this.cluster.has(shardId)) {
      throw new ShardCommandError(shardId, 'this process does not run the shard right now (it is moving or starting)');
    }
    if (method === 'send') return this.cluster.send(shardId, args as GatewaySendPayload);
    if (method === 'requestGuildMembers') {
      const options = args as RequestGuildMembersOptions;
      if (this.shardFor(options?.guildId, options?.shardId) !== shardId) throw new GatewayOptionsError('guildId', `is not on shard ${shardId}`);
      return this.requestGuildMembersHere(options);
    }
    if (method === 'requestChannelInfo') {
      const { guildId, ...rest } = args as ShardRequestChannelInfoOptions & { guildId: string };
      return this.cluster.requestChannelInfo(guildId, { ...rest, shardId });
    }
    throw new ShardCommandError(shardId, `unknown call ${String(method)}`);
  }

  /** Info of every shard, or of one. */
  info(): ClusterShardInfo[];
  info(shardId: number): ClusterShardInfo | undefined;
  info(shardId?: number): ClusterShardInfo[] | ClusterShardInfo | undefined {
    const all = this.cluster.info();
    return shardId === undefined ? all : all.find((s) => s.id === shardId);
  }
}

function requireSnowflake(field: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || !SNOWFLAKE.test(value)) {
    throw new GatewayOptionsError(field, 'must be a snowflake string');
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What a member request reads of a `GUILD_MEMBERS_CHUNK`, checked; members and presences pass on as they came. */
interface MembersChunk {
  chunkIndex: number;
  chunkCount: number;
  members: GatewayGuildMembersChunkDispatchData['members'];
  presences: GatewayPresenceUpdate[];
  notFound: string[];
}

/**
 * A `GUILD_MEMBERS_CHUNK` of the request with `nonce`: null when it belongs to another request, the problem when it
 * is malformed and may have been this request's reply (its nonce cannot be read, or it is this request's).
 */
function readMembersChunk(d: unknown, nonce: string): MembersChunk | string | null {
  if (!isObject(d)) return 'd is not an object';
  if (d.nonce !== undefined && typeof d.nonce !== 'string') return 'd.nonce is not a string';
  if (d.nonce !== nonce) return null;
  const { members, presences = [], not_found: notFound = [], chunk_count: chunkCount, chunk_index: chunkIndex } = d;
  if (!Array.isArray(members)) return 'd.members is not an array';
  if (typeof chunkCount !== 'number' || !Number.isInteger(chunkCount) || chunkCount < 1) return 'd.chunk_count is not an integer >= 1';
  if (typeof chunkIndex !== 'number' || !Number.isInteger(chunkIndex) || chunkIndex < 0 || chunkIndex >= chunkCount) {
    return 'd.chunk_index is not an integer from 0 to chunk_count - 1';
  }
  if (!Array.isArray(presences)) return 'd.presences is not an array';
  if (!Array.isArray(notFound)) return 'd.not_found is not an array';
  return { chunkIndex, chunkCount, members, presences, notFound };
}

/**
 * The wait, in seconds, of a `RATE_LIMITED` for the member request with `nonce`: null when it is for another
 * request or opcode, the problem when it is malformed and may have been this request's.
 */
function readRateLimited(d: unknown, nonce: string): number | string | null {
  if (!isObject(d)) return 'd is not an object';
  if (d.opcode !== GatewayOpcodes.RequestGuildMembers) return typeof d.opcode === 'number' ? null : 'd.opcode is not a number';
  const meta = d.meta;
  if (!isObject(meta)) return 'd.meta is not an object';
  if (meta.nonce !== nonce) return meta.nonce === undefined || typeof meta.nonce === 'string' ? null : 'd.meta.nonce is not a string';
  const wait = d.retry_after;
  if (typeof wait !== 'number' || !Number.isFinite(wait) || wait < 0) return 'd.retry_after is not a number >= 0';
  return wait;
}

/**
 * A `SOUNDBOARD_SOUNDS` for one of the `wanted` guilds: null when it is for another guild, the problem when it is
 * malformed and may have been for one of them.
 */
function readSoundboardSounds(d: unknown, wanted: ReadonlySet<string>): { guild_id: string; soundboard_sounds: APISoundboardSound[] } | string | null {
  if (!isObject(d)) return 'd is not an object';
  if (typeof d.guild_id !== 'string') return 'd.guild_id is not a string';
  if (!wanted.has(d.guild_id)) return null;
  if (!Array.isArray(d.soundboard_sounds)) return 'd.soundboard_sounds is not an array';
  return { guild_id: d.guild_id, soundboard_sounds: d.soundboard_sounds as APISoundboardSound[] };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
