import 'reflect-metadata';
import { after, before, beforeEach, describe, it } from 'node:test';
import { expect } from 'expect';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ActivityType } from 'discord-api-types/v10';
import { createMember, createTestingGateway, type TestingGateway } from '../../lib/nest/testing';
import { AppModule } from '../../sample/app.module';
import { DEMO_GUILDS } from '../../sample/demo-script';
import { MessageStatsService } from '../../sample/message-stats.service';

// The sample bot's own modules, booted on the testing kit the way a bot author tests a bot.

void describe('sample bot on the testing kit', () => {
  let kit: TestingGateway;
  let app: INestApplicationContext;
  let stats: MessageStatsService;

  before(async () => {
    kit = await createTestingGateway({ shards: 2, guilds: DEMO_GUILDS, membersPerGuild: 25 });
    app = await NestFactory.createApplicationContext(AppModule.register(kit.options), { logger: false, abortOnError: false });
    kit.attach(app);
    stats = app.get(MessageStatsService);
  });

  after(async () => {
    await app?.close();
    await kit?.close();
  });

  beforeEach(() => kit.clearSent());

  void it('fetches the members of the first guild that arrives, once', async () => {
    const first = await kit.gateway.waitForFrame((f) => f.op === 8, 15_000, 0);
    expect(DEMO_GUILDS).toContain(first.d.guild_id);
    expect(first.d).toMatchObject({ query: '', limit: 0 });
    // Another guild joins later: no second request.
    const joined = await kit.guild({ members: 5 });
    expect(joined.errors).toEqual([]);
    await kit.idle();
    expect(kit.gateway.framesOf(8)).toHaveLength(1);
  });

  void it('counts messages per guild and answers !stats with a presence update on every shard', async () => {
    const before = stats.total;
    await kit.message('hello there', { guildId: DEMO_GUILDS[0] });
    await kit.message('how is everyone?', { guildId: DEMO_GUILDS[1] });
    const command = await kit.message('!stats', { guildId: DEMO_GUILDS[2] });
    expect(command.errors).toEqual([]);
    const total = before + 3;
    expect(stats.total).toBe(total);

    const expected = { since: null, afk: false, status: 'online', activities: [{ name: `${total} message(s)`, type: ActivityType.Watching }] };
    expect(kit.presenceUpdates(0)).toEqual([expected]);
    expect(kit.presenceUpdates(1)).toEqual([expected]);
  });

  void it('ignores messages from bots: they are not counted and !stats from a bot changes nothing', async () => {
    const before = stats.total;
    const bot = { ...createMember(42).user, bot: true };
    await kit.message('!stats', { guildId: DEMO_GUILDS[0], author: bot });
    expect(stats.total).toBe(before);
    expect(kit.presenceUpdates()).toEqual([]);
  });

  void it('counts direct messages apart from guild messages', async () => {
    await kit.message('hi bot', { guildId: null });
    expect(stats.snapshot()['direct messages']).toBe(1);
  });

  void it('counts events replayed after a dropped connection once each', async () => {
    const guildId = DEMO_GUILDS[2];
    const shardId = kit.shardIdForGuild(guildId);
    const before = stats.snapshot()[guildId] ?? 0;
    kit.gateway.dropShard(shardId);
    await kit.message('sent while the bot was away', { guildId, wait: false });
    await kit.message('replayed on resume', { guildId, wait: false });
    await kit.gateway.waitForReady(shardId);
    const after = await kit.message('!stats', { guildId });
    expect(after.shardId).toBe(shardId);
    expect(stats.snapshot()[guildId]).toBe(before + 3);
    expect(kit.presenceUpdates(shardId).map((p) => p.activities[0].name)).toEqual([`${stats.total} message(s)`]);
  });
});
