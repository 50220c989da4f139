import type { GatewaySendPayload } from 'discord-api-types/v10';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import { ShardCommandError } from '../errors/shard-command.error';
import type { RequestChannelInfoOptions } from './channel-info-requests';
import type { Cluster } from './cluster';
import type { RequestGuildMembersOptions } from './member-requests';
import { targetShard } from './target-shard';

/** Shard calls that can run on the process that owns the shard (see `ShardService`). */
export type RemoteShardMethod = 'send' | 'requestGuildMembers' | 'requestChannelInfo';

/**
 * Runs, on `cluster`, a call that another process forwarded for one of its shards (shard ownership); never
 * forwards it again. Send, member and channel info requests run here as they would for a local caller.
 * @throws {@link ShardCommandError} when the cluster does not run the shard (it is moving or starting) or the
 * method is unknown; {@link GatewayOptionsError} when the guild is not on the shard.
 */
export async function runForwardedShardCall(cluster: Cluster, method: RemoteShardMethod, shardId: number, args: unknown): Promise<unknown> {
  if (!cluster.has(shardId)) {
    throw new ShardCommandError(shardId, 'this process does not run the shard right now (it is moving or starting)');
  }
  if (method === 'send') return cluster.send(shardId, args as GatewaySendPayload);
  if (method === 'requestGuildMembers') {
    const options = args as RequestGuildMembersOptions;
    if (targetShard(cluster, options?.guildId, options?.shardId) !== shardId) throw new GatewayOptionsError('guildId', `is not on shard ${shardId}`);
    return cluster.requestGuildMembers(options);
  }
  if (method === 'requestChannelInfo') {
    const { guildId, ...rest } = args as RequestChannelInfoOptions & { guildId: string; shardId?: number };
    return cluster.requestChannelInfo(guildId, { ...rest, shardId });
  }
  throw new ShardCommandError(shardId, `unknown call ${String(method)}`);
}
