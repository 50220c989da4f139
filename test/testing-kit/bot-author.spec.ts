import 'reflect-metadata';
import { after, afterEach, before, describe, it } from 'node:test';
import { expect } from 'expect';
import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { ActivityType, PresenceUpdateStatus } from 'discord-api-types/v10';
import { GatewayModule, OnEvent, ShardService, type GatewayEventContext, type GatewayEventData, type GatewayModuleOptions } from '../../lib/nest';
import {
  GatewayTestingModule,
  TestingGateway,
  createMember,
  createTestingGateway,
} from '../../lib/nest/testing';

// A small bot, written the way a bot author writes one, tested end to end through the public testing kit only.

/** Guilds on shard 0 and shard 1 of a two-shard bot: `(id >> 22) % 2`. */
const GUILD_A = '81384788765712384';
const GUILD_B = '1023234123812343808';

@Injectable()
class GuildDirectory {
  readonly guilds = new Map<string, { name: string; textChannels: number; members: number }>();
  readonly nicknames = new Map<string, string | null>();
  stars = 0;
}

@Injectable()
class CommandsHandler {
  constructor(
    private readonly shards: ShardService,
    private readonly directory: GuildDirectory,
  ) {}

  @OnEvent('MESSAGE_CREATE')
  async onMessage(message: GatewayEventData<'MESSAGE_CREATE'>, context: GatewayEventContext): Promise<void> {
    if (message.author.bot) return;
    const [command, arg] = message.content.trim().split(/\s+/);
    if (command === '!ping') {
      // Answers on the shard the command came from only.
      await this.shards.setPresence(
        { since: null, afk: false, status: PresenceUpdateStatus.Online, activities: [{ name: `pong from ${context.shardId}`, type: ActivityType.Playing }] },
        context.shardId,
      );
    } else if (command === '!join' && message.guild_id) {
      await this.shards.updateVoiceState({ guild_id: message.guild_id, channel_id: arg, self_mute: false, self_deaf: true });
    } else if (command === '!leave' && message.guild_id) {
      await this.shards.updateVoiceState({ guild_id: message.guild_id, channel_id: null, self_mute: false, self_deaf: false });
    } else if (command === '!boom') {
      throw new Error('the boom command always fails');
    }
  }

  @OnEvent('GUILD_CREATE')
  async onGuild(guild: GatewayEventData<'GUILD_CREATE'>): Promise<void> {
    if (!('name' in guild)) return;
    const textChannels = guild.channels.filter((c) => c.type === 0).length;
    // A guild the bot just joined with few members: fetch them all.
    const { members } = await this.shards.requestGuildMembers({ guildId: guild.id, timeoutMs: 2_000 });
    this.directory.guilds.set(guild.id, { name: guild.name, textChannels, members: members.length });
  }

  @OnEvent('GUILD_MEMBER_UPDATE')
  onMemberUpdate(update: GatewayEventData<'GUILD_MEMBER_UPDATE'>): void {
    this.directory.nicknames.set(update.user.id, update.nick ?? null);
  }

  @OnEvent('MESSAGE_REACTION_ADD')
  onReaction(reaction: GatewayEventData<'MESSAGE_REACTION_ADD'>): void {
    if (reaction.emoji.name === '⭐') this.directory.stars++;
  }
}

@Module({ providers: [GuildDirectory, CommandsHandler] })
class BotFeatureModule {}

/** The bot's root module, as its main.ts builds it with the real token. */
@Module({})
class BotAppModule {
  static register(options: GatewayModuleOptions) {
    return { module: BotAppModule, imports: [GatewayModule.forRoot(options)], providers: [GuildDirectory, CommandsHandler] };
  }
}

void describe('testing a bot with GatewayTestingModule', () => {
  let app: INestApplication;
  let kit: TestingGateway;
  let directory: GuildDirectory;

  before(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [GatewayTestingModule.forRoot({ shards: 2, guilds: [GUILD_A, GUILD_B], membersPerGuild: 3 }), BotFeatureModule],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    kit = app.get(TestingGateway);
    directory = app.get(GuildDirectory);
  });

  after(async () => {
    await app?.close();
  });

  afterEach(() => kit.clearSent());

  void it('answers !ping with a presence update on the shard of the guild the message came from', async () => {
    const toB = await kit.message('!ping', { guildId: GUILD_B });
    expect(toB.shardId).toBe(1);
    expect(kit.presenceUpdates(1)).toEqual([
      { since: null, afk: false, status: 'online', activities: [{ name: 'pong from 1', type: ActivityType.Playing }] },
    ]);
    expect(kit.presenceUpdates(0)).toEqual([]);

    const toA = await kit.message('!ping', { guildId: GUILD_A });
    expect(toA.shardId).toBe(0);
    expect(kit.presenceUpdates().map((p) => p.activities[0].name)).toEqual(['pong from 1', 'pong from 0']);
  });

  void it('sends an explicit shard id where the caller asks, whatever the guild', async () => {
    const sent = await kit.message('!ping', { guildId: GUILD_A, shardId: 1 });
    expect(sent.shardId).toBe(1);
    expect(kit.presenceUpdates(1).map((p) => p.activities[0].name)).toEqual(['pong from 1']);
  });

  void it('joins and leaves voice through the guild shard', async () => {
    await kit.message('!join 175928847299117063', { guildId: GUILD_B });
    await kit.message('!leave', { guildId: GUILD_B });
    expect(kit.voiceStates(1)).toEqual([
      { guild_id: GUILD_B, channel_id: '175928847299117063', self_mute: false, self_deaf: true },
      { guild_id: GUILD_B, channel_id: null, self_mute: false, self_deaf: false },
    ]);
    expect(kit.voiceStates(0)).toEqual([]);
  });

  void it('reports what a failing handler threw, and the bot keeps going', async () => {
    const boom = await kit.message('!boom');
    expect(boom.handlers).toBe(1);
    expect(boom.errors.map((e) => e.message)).toEqual(['the boom command always fails']);
    const ping = await kit.message('!ping');
    expect(ping.errors).toEqual([]);
    expect(kit.presenceUpdates()).toHaveLength(1);
  });

  void it('ignores messages from bots', async () => {
    const fromBot = await kit.message('!ping', { author: { ...createMember(7).user, bot: true } });
    expect(fromBot.handlers).toBe(1);
    expect(kit.presenceUpdates()).toEqual([]);
  });

  void it('reads a joined guild with its channels and fetches its members through op 8', async () => {
    const joined = await kit.guild({ channels: 10, members: 3 });
    const guild = joined.data;
    expect(joined.shardId).toBe(kit.shardIdForGuild(guild.id));
    const textChannels = guild.channels.filter((c) => c.type === 0).length;
    expect(textChannels).toBeGreaterThan(0);
    expect(directory.guilds.get(guild.id)).toEqual({ name: guild.name, textChannels, members: 3 });
    expect(kit.memberRequests(joined.shardId)).toEqual([
      expect.objectContaining({ guild_id: guild.id, query: '', limit: 0 }),
    ]);
  });

  void it('tracks nickname changes and star reactions', async () => {
    const update = await kit.memberUpdate(GUILD_A, { nick: 'Captain Star' });
    expect(directory.nicknames.get(update.data.user.id)).toBe('Captain Star');

    const before = directory.stars;
    await kit.reaction(GUILD_B, { emoji: { id: null, name: '⭐' } });
    await kit.reaction(GUILD_B, { emoji: { id: null, name: '👍' } });
    expect(directory.stars).toBe(before + 1);
  });

  void it('waits for an event no handler asks for until the shard has read it', async () => {
    const typing = await kit.emit('TYPING_START', { channel_id: '1', user_id: '2', timestamp: 0, guild_id: GUILD_B });
    expect(typing.shardId).toBe(1);
    expect(typing.handlers).toBeNull();
    expect(app.get(ShardService).info(1)!.sequence).toBeGreaterThanOrEqual(typing.sequence);
  });

  void it('waits for presence updates that come later, and gets the events replayed after a dropped connection', async () => {
    const later = kit.waitForPresenceUpdate((p) => p.activities[0]?.name === 'pong from 0');
    kit.gateway.dropShard(0);
    // Sent while shard 0 is away: the gateway keeps it and replays it on resume.
    const sent = await kit.message('!ping', { guildId: GUILD_A, wait: false });
    expect(sent.handlers).toBeNull();
    await kit.gateway.waitForReady(0);
    expect((await later).status).toBe('online');
    await kit.idle();
  });
});

void describe('testing a bot with createTestingGateway and the bot own root module', () => {
  let kit: TestingGateway;
  let app: Awaited<ReturnType<typeof NestFactory.createApplicationContext>>;

  before(async () => {
    kit = await createTestingGateway({ guilds: [GUILD_A] });
    app = await NestFactory.createApplicationContext(BotAppModule.register(kit.options), { logger: false });
    kit.attach(app);
  });

  after(async () => {
    await app?.close();
    await kit?.close();
  });

  void it('drives the same handlers through the options it hands to the bot module', async () => {
    expect(kit.attached).toBe(true);
    const ping = await kit.message('!ping');
    expect(ping.shardId).toBe(0);
    expect(kit.presenceUpdates()).toHaveLength(1);
    expect(kit.sent(3)).toHaveLength(1);
  });

  void it('times out with a clear message when the shard cannot receive the event', async () => {
    await expect(kit.emit('MESSAGE_CREATE', {} as never, { shardId: 5, timeoutMs: 100 })).rejects.toThrow(/shard 5/);
  });
});
