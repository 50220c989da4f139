import { GatewayOptionsError } from '../errors/gateway-options.error';

/** What {@link targetShard} reads of a cluster: the bot's shard count and which shard receives a guild's events. */
export interface ShardLocator {
  /** Shard count of the whole bot (0 before the cluster started). */
  readonly total: number;
  /** The shard that receives a guild's events. */
  shardIdForGuild(guildId: string): number;
}

/**
 * The shard a command for `guildId` goes through: `shardId` when given (checked to be a shard of the bot), else
 * the shard of the guild.
 * @throws {@link GatewayOptionsError} when `shardId` is not a shard of the bot.
 */
export function targetShard(locator: ShardLocator, guildId: string, shardId: number | undefined): number {
  if (shardId === undefined) return locator.shardIdForGuild(guildId);
  const total = locator.total;
  if (!Number.isInteger(shardId) || shardId < 0 || (total > 0 && shardId >= total)) {
    throw new GatewayOptionsError('shardId', `must be an integer from 0 to ${Math.max(0, total - 1)}`);
  }
  return shardId;
}
