import { Injectable, Logger } from '@nestjs/common';
import { ActivityType, PresenceUpdateStatus } from 'discord-api-types/v10';
import { OnEvent, ShardService, type GatewayEventContext, type GatewayEventData } from '../lib/nest';
import { MessageStatsService } from './message-stats.service';

/** The sample bot's event handlers. */
@Injectable()
export class BotEventsHandler {
  private readonly logger = new Logger('Bot');
  private membersRequested = false;

  constructor(
    private readonly shards: ShardService,
    private readonly stats: MessageStatsService,
  ) {}

  @OnEvent('READY')
  onReady(ready: GatewayEventData<'READY'>, context: GatewayEventContext): void {
    this.logger.log(`shard ${context.shardId} ready as ${ready.user.username}, ${ready.guilds.length} guild(s)`);
  }

  @OnEvent('RESUMED')
  onResumed(_data: unknown, context: GatewayEventContext): void {
    this.logger.log(`shard ${context.shardId} resumed its session at sequence ${context.sequence}`);
  }

  @OnEvent('GUILD_CREATE')
  async onGuild(guild: GatewayEventData<'GUILD_CREATE'>): Promise<void> {
    if (!('name' in guild)) return;
    this.logger.log(`guild available: ${guild.name} (${guild.id})`);
    if (this.membersRequested) return;
    this.membersRequested = true;
    const result = await this.shards.requestGuildMembers({ guildId: guild.id, timeoutMs: 10_000 });
    this.logger.log(`fetched ${result.members.length} member(s) of ${guild.name}`);
  }

  @OnEvent('MESSAGE_CREATE')
  async onMessage(message: GatewayEventData<'MESSAGE_CREATE'>, context: GatewayEventContext): Promise<void> {
    if (message.author.bot) return;
    this.stats.record(message.guild_id);
    if (message.content.trim() !== '!stats') return;
    const total = this.stats.total;
    await this.shards.setPresence({
      since: null,
      afk: false,
      status: PresenceUpdateStatus.Online,
      activities: [{ name: `${total} message(s)`, type: ActivityType.Watching }],
    });
    this.logger.log(`!stats on shard ${context.shardId}: ${total} message(s) so far, presence updated`);
  }
}
