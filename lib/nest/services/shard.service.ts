import { Inject, Injectable, Optional } from '@nestjs/common';
import type {
  APISoundboardSound,
  GatewayPresenceUpdateData,
  GatewaySendPayload,
  GatewayVoiceStateUpdateData,
} from 'discord-api-types/v10';
import type { GatewayChannelInfoDispatchData } from 'discord-api-types/v10';
import type { RequestChannelInfoOptions } from '../../core/cluster/channel-info-requests';
import { Cluster, type ClusterShardInfo } from '../../core/cluster/cluster';
import type { GuildMembersResult, RequestGuildMembersOptions } from '../../core/cluster/member-requests';
import type { RequestSoundboardSoundsOptions } from '../../core/cluster/soundboard-requests';
import { targetShard } from '../../core/cluster/target-shard';
import { GATEWAY_MODULE_OPTIONS } from '../constants/gateway-module.constants';
import type { GatewayModuleOptions } from '../interfaces/gateway-module-options.interface';
import { GATEWAY_SCALE_OUT, type IGatewayScaleOut } from '../interfaces/gateway-scale-out.interface';
import { presenceUpdateCommand, voiceStateUpdateCommand } from '../../core/shard/gateway-commands';
import { requireSnowflake } from '../../core/shard/snowflake';

/** Options of {@link ShardService.requestChannelInfo}. */
export interface ShardRequestChannelInfoOptions extends RequestChannelInfoOptions {
  /** Shard to send it through. @defaultValue the shard of the guild */
  shardId?: number;
}

/**
 * Commands to Discord through the bot's shards: presence, voice state, member and soundboard requests, raw
 * commands, and each shard's info. The commands and their replies are the cluster's (`Cluster`); with shard
 * ownership, a call for a shard another process runs goes to that process.
 */
@Injectable()
export class ShardService {
  private readonly cooldownMs: number;

  /**
   * @param cluster - the cluster the commands go through (its options hold `memberRequestCooldownMs`)
   * @param options - the module's options
   * @param scaleOut - with shard ownership, what forwards calls for shards of other processes
   */
  constructor(
    private readonly cluster: Cluster,
    @Inject(GATEWAY_MODULE_OPTIONS) options: GatewayModuleOptions,
    @Optional() @Inject(GATEWAY_SCALE_OUT) private readonly scaleOut: IGatewayScaleOut | null = null,
  ) {
    this.cooldownMs = options.memberRequestCooldownMs ?? 30_000;
  }

  /** Sets the bot's presence on every shard, or on one. */
  async setPresence(presence: GatewayPresenceUpdateData, shardId?: number): Promise<void> {
    const command = presenceUpdateCommand(presence);
    // With shard ownership, "every shard" is every shard of the bot, wherever it runs.
    const ids =
      shardId !== undefined ? [shardId]
      : this.scaleOut?.distributed ? Array.from({ length: this.cluster.total }, (_, id) => id)
      : [...this.cluster.shards.keys()];
    await Promise.all(ids.map((id) => this.sendTo(id, command)));
  }

  /** Joins, moves or leaves (channel_id null) a voice channel, through the guild's shard (or `shardId`). */
  async updateVoiceState(state: GatewayVoiceStateUpdateData, shardId?: number): Promise<void> {
    const command = voiceStateUpdateCommand(state);
    return this.sendTo(targetShard(this.cluster, state.guild_id, shardId), command);
  }

  /**
   * Requests guild members and collects every `GUILD_MEMBERS_CHUNK` of the answer. Honours `RATE_LIMITED`
   * (waits `retry_after`, then asks again) and Discord's limit of one full-list request per guild per 30 s
   * (a second one waits its turn).
   */
  async requestGuildMembers(options: RequestGuildMembersOptions): Promise<GuildMembersResult> {
    requireSnowflake('guildId', options?.guildId);
    const shardId = this.scaleOut?.distributed ? targetShard(this.cluster, options.guildId, options.shardId) : -1;
    if (shardId >= 0 && this.isRemote(shardId)) {
      // The chunks arrive on the owner's connection: the whole request runs there.
      const waitMs = (options.timeoutMs ?? 30_000) + this.cooldownMs + 5_000;
      return this.scaleOut!.request<GuildMembersResult>(shardId, 'requestGuildMembers', options, waitMs);
    }
    return this.cluster.requestGuildMembers(options);
  }

  /**
   * Requests the soundboard sounds of guilds (op 31) and collects one `SOUNDBOARD_SOUNDS` per guild. The second
   * argument is the timeout (ms) or {@link RequestSoundboardSoundsOptions}.
   */
  async requestSoundboardSounds(
    guildIds: string[],
    timeoutOrOptions: number | RequestSoundboardSoundsOptions = {},
  ): Promise<Record<string, APISoundboardSound[]>> {
    return this.cluster.requestSoundboardSounds(guildIds, timeoutOrOptions);
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
    const shardId = targetShard(this.cluster, guildId, options.shardId);
    if (this.isRemote(shardId)) {
      const waitMs = (options.timeoutMs ?? 30_000) + 5_000;
      return this.scaleOut!.request<GatewayChannelInfoDispatchData>(shardId, 'requestChannelInfo', { ...options, guildId, shardId }, waitMs);
    }
    return this.cluster.requestChannelInfo(guildId, { ...options, shardId });
  }

  /** True when `shardId` runs in another process (shard ownership) and calls for it go through Redis. */
  private isRemote(shardId: number): boolean {
    return !!this.scaleOut?.distributed && !this.cluster.has(shardId);
  }

  private async sendTo(shardId: number, command: GatewaySendPayload): Promise<void> {
    if (this.isRemote(shardId)) await this.scaleOut!.request(shardId, 'send', command);
    else await this.cluster.send(shardId, command);
  }

  /** Info of every shard, or of one. */
  info(): ClusterShardInfo[];
  info(shardId: number): ClusterShardInfo | undefined;
  info(shardId?: number): ClusterShardInfo[] | ClusterShardInfo | undefined {
    const all = this.cluster.info();
    return shardId === undefined ? all : all.find((s) => s.id === shardId);
  }
}
