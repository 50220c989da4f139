import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { ActivityType, GatewayOpcodes, PresenceUpdateStatus, type GatewayPresenceUpdateData } from 'discord-api-types/v10';
import { ClusterService, type GatewayModuleOptions } from '../../lib/nest';
import { GatewayOptionsError, ShardState, type GatewayDispatch } from '../../lib/core';
import { createMessage, type LocalGateway, type LocalGatewayOptions, type RecordedFrame } from '../../lib/nest/testing';
import { eventually, heartbeatRoundTrip } from '../helpers/gateway-test-kit';
import {
  GUILD_ON_SHARD_0,
  GUILD_ON_SHARD_1,
  NestHarness,
  VOICE_CHANNEL,
  rejectionOf,
  startTwoShardApp,
  type RunningApp,
} from './nest-test-kit';

const harness = new NestHarness();

void afterEach(async () => {
  await harness.cleanup();
});

/** A two-shard gateway with both guilds, and a ready app connected to it. */
function start(gatewayOptions: LocalGatewayOptions = {}, options: Partial<GatewayModuleOptions> = {}): Promise<RunningApp> {
  return startTwoShardApp(harness, gatewayOptions, options);
}

/** Every dispatch the cluster emits from now on. */
function collect(cluster: ClusterService): { events: GatewayDispatch[]; stop: () => void } {
  const events: GatewayDispatch[] = [];
  const subscription = cluster.events$.subscribe((event) => events.push(event));
  return { events, stop: () => subscription.unsubscribe() };
}

function memberRequests(gateway: LocalGateway, guildId: string): RecordedFrame[] {
  return gateway.framesOf(GatewayOpcodes.RequestGuildMembers).filter((f) => f.d.guild_id === guildId);
}

const PRESENCE: GatewayPresenceUpdateData = {
  since: null,
  afk: false,
  status: PresenceUpdateStatus.Idle,
  activities: [{ name: 'the tests', type: ActivityType.Watching }],
};

void describe('ShardService commands', () => {
  void it('setPresence sends op 3 on every shard, or on the one given', async () => {
    const { gateway, shards } = await start();
    await shards.setPresence(PRESENCE);
    await eventually(() => gateway.framesOf(GatewayOpcodes.PresenceUpdate).length >= 2, 15_000, 'two op 3 frames');
    for (const shardId of [0, 1]) {
      const frames = gateway.framesOf(GatewayOpcodes.PresenceUpdate, shardId);
      expect(frames).toHaveLength(1);
      expect(frames[0].d).toEqual({ since: null, afk: false, status: 'idle', activities: [{ name: 'the tests', type: ActivityType.Watching }] });
    }

    await shards.setPresence({ ...PRESENCE, status: PresenceUpdateStatus.DoNotDisturb, activities: [] }, 1);
    await eventually(() => gateway.framesOf(GatewayOpcodes.PresenceUpdate, 1).length >= 2, 15_000, 'a second op 3 on shard 1');
    // Shard 0 answered a heartbeat request sent after that: an op 3 it sent before would be recorded.
    await heartbeatRoundTrip(gateway, 0);
    expect(gateway.framesOf(GatewayOpcodes.PresenceUpdate, 0)).toHaveLength(1);
    expect(gateway.framesOf(GatewayOpcodes.PresenceUpdate, 1)[1].d).toMatchObject({ status: 'dnd', activities: [] });
  });

  void it("updateVoiceState sends op 4 through the shard that owns the guild", async () => {
    const { gateway, shards, cluster } = await start();
    expect([cluster.shardIdForGuild(GUILD_ON_SHARD_0), cluster.shardIdForGuild(GUILD_ON_SHARD_1)]).toEqual([0, 1]);

    await shards.updateVoiceState({ guild_id: GUILD_ON_SHARD_1, channel_id: VOICE_CHANNEL, self_mute: true, self_deaf: false });
    await shards.updateVoiceState({ guild_id: GUILD_ON_SHARD_0, channel_id: null, self_mute: false, self_deaf: true });
    await eventually(() => gateway.framesOf(GatewayOpcodes.VoiceStateUpdate).length >= 2, 15_000, 'two op 4 frames');

    expect(gateway.framesOf(GatewayOpcodes.VoiceStateUpdate, 1).map((f) => f.d)).toEqual([
      { guild_id: GUILD_ON_SHARD_1, channel_id: VOICE_CHANNEL, self_mute: true, self_deaf: false },
    ]);
    expect(gateway.framesOf(GatewayOpcodes.VoiceStateUpdate, 0).map((f) => f.d)).toEqual([
      { guild_id: GUILD_ON_SHARD_0, channel_id: null, self_mute: false, self_deaf: true },
    ]);
  });

  void it('requestGuildMembers collects every chunk of a full list (2500 members, 3 chunks)', async () => {
    const { gateway, shards, cluster } = await start({ membersPerGuild: 2500 });
    const events = collect(cluster);
    try {
      const result = await shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_1, timeoutMs: 5_000 });
      expect(result.guildId).toBe(GUILD_ON_SHARD_1);
      expect(result.members).toHaveLength(2500);
      expect(new Set(result.members.map((m) => m.user.id)).size).toBe(2500);
      expect(result.notFound).toEqual([]);

      const chunks = events.events.filter((e) => e.t === 'GUILD_MEMBERS_CHUNK' && (e.d as { nonce?: string }).nonce === result.nonce);
      expect(chunks).toHaveLength(3);
      expect(chunks.every((c) => c.shardId === 1)).toBe(true);
      const requests = memberRequests(gateway, GUILD_ON_SHARD_1);
      expect(requests).toHaveLength(1);
      expect(requests[0].shardId).toBe(1);
      expect(requests[0].d).toMatchObject({ guild_id: GUILD_ON_SHARD_1, query: '', limit: 0, nonce: result.nonce });
    } finally {
      events.stop();
    }
  });

  void it('requestGuildMembers by user ids reports the ids that are not members', async () => {
    const { shards } = await start({ membersPerGuild: 50 });
    const some = await shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_0, query: '', limit: 3 });
    expect(some.members).toHaveLength(3);
    const missing = '1000000000000000099';
    const byIds = await shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_0, userIds: [some.members[0].user.id, missing] });
    expect(byIds.members.map((m) => m.user.id)).toEqual([some.members[0].user.id]);
    expect(byIds.notFound).toEqual([missing]);
  });

  void it('a second full-list request for a guild within memberRequestCooldownMs waits for the cooldown; other guilds do not', async () => {
    // The gateway's own window is shorter, so a request that waited its turn is answered at once.
    const { gateway, shards, cluster } = await start({ membersPerGuild: 20, memberRequestCooldownMs: 300 }, { memberRequestCooldownMs: 400 });
    const events = collect(cluster);
    try {
      const started = Date.now();
      const first = shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_0, timeoutMs: 5_000 });
      const second = shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_0, timeoutMs: 5_000 });
      const otherGuild = shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_1, timeoutMs: 5_000 });

      const firstResult = await first;
      const firstDone = Date.now();
      expect(firstResult.members).toHaveLength(20);
      expect((await otherGuild).members).toHaveLength(20);
      const secondResult = await second;
      const secondDone = Date.now();

      expect(secondResult.members).toHaveLength(20);
      expect(secondDone - started).toBeGreaterThanOrEqual(380);
      expect(secondDone).toBeGreaterThanOrEqual(firstDone);
      const requests = memberRequests(gateway, GUILD_ON_SHARD_0);
      expect(requests).toHaveLength(2);
      expect(requests[1].at - requests[0].at).toBeGreaterThanOrEqual(380);
      // The other guild's request went out at once, before the delayed one.
      expect(memberRequests(gateway, GUILD_ON_SHARD_1)[0].at).toBeLessThan(requests[1].at);
      expect(events.events.filter((e) => e.t === 'RATE_LIMITED')).toEqual([]);
    } finally {
      events.stop();
    }
  });

  void it('a request answered with RATE_LIMITED is sent again after retry_after and then answered', async () => {
    const { gateway, shards, cluster } = await start({ membersPerGuild: 1500, memberRequestCooldownMs: 500 }, { memberRequestCooldownMs: 0 });
    const events = collect(cluster);
    try {
      // Both go out at once (no cooldown on the bot's side): the second reaches the gateway within its window
      // however long the first answer takes to arrive.
      const [first, second] = await Promise.all([
        shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_1, timeoutMs: 15_000 }),
        shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_1, timeoutMs: 15_000 }),
      ]);
      expect(first.members).toHaveLength(1500);
      expect(second.members).toHaveLength(1500);
      expect(second.nonce).not.toBe(first.nonce);

      const limited = events.events.filter((e) => e.t === 'RATE_LIMITED');
      expect(limited.length).toBeGreaterThanOrEqual(1);
      expect(limited[0].shardId).toBe(1);
      expect(limited[0].d).toMatchObject({ opcode: GatewayOpcodes.RequestGuildMembers, meta: { guild_id: GUILD_ON_SHARD_1, nonce: second.nonce } });

      const requests = memberRequests(gateway, GUILD_ON_SHARD_1);
      const retries = requests.filter((f) => f.d.nonce === second.nonce);
      expect(retries.length).toBe(limited.length + 1);
      // The answered retry came once the gateway's window had passed.
      expect(retries[retries.length - 1].at - requests[0].at).toBeGreaterThanOrEqual(490);
      const chunks = events.events.filter((e) => e.t === 'GUILD_MEMBERS_CHUNK' && (e.d as { nonce?: string }).nonce === second.nonce);
      expect(chunks).toHaveLength(2);
    } finally {
      events.stop();
    }
  });

  void it('requestSoundboardSounds asks each guild through its own shard and returns one entry per guild', async () => {
    const { gateway, shards } = await start();
    const sounds = await shards.requestSoundboardSounds([GUILD_ON_SHARD_0, GUILD_ON_SHARD_1], 5_000);
    expect(sounds).toEqual({ [GUILD_ON_SHARD_0]: [], [GUILD_ON_SHARD_1]: [] });
    expect(gateway.framesOf(GatewayOpcodes.RequestSoundboardSounds, 0).map((f) => f.d)).toEqual([{ guild_ids: [GUILD_ON_SHARD_0] }]);
    expect(gateway.framesOf(GatewayOpcodes.RequestSoundboardSounds, 1).map((f) => f.d)).toEqual([{ guild_ids: [GUILD_ON_SHARD_1] }]);
  });

  void it('rejects bad command payloads with a GatewayOptionsError naming the field, sending nothing', async () => {
    const { gateway, shards } = await start();
    const framesBefore = gateway.frames.filter((f) => f.op !== GatewayOpcodes.Heartbeat).length;
    const cases: [() => Promise<unknown>, string][] = [
      [() => shards.setPresence({ ...PRESENCE, status: 'nope' as never }), 'presence.status'],
      [() => shards.setPresence({ status: PresenceUpdateStatus.Online } as never), 'presence.activities'],
      [() => shards.updateVoiceState({ guild_id: 'x' } as never), 'voiceState.guild_id'],
      [() => shards.updateVoiceState({ guild_id: GUILD_ON_SHARD_0, channel_id: 'lobby', self_mute: false, self_deaf: false }), 'voiceState.channel_id'],
      [() => shards.requestGuildMembers({ guildId: 'x' }), 'guildId'],
      [() => shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_0, userIds: [] }), 'userIds'],
      [() => shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_0, limit: -1 }), 'limit'],
      [() => shards.requestSoundboardSounds([]), 'guildIds'],
      [() => shards.requestSoundboardSounds([GUILD_ON_SHARD_0, 'nope']), 'guildIds[1]'],
      [() => shards.send(7, { op: GatewayOpcodes.PresenceUpdate, d: { ...PRESENCE } }), 'shardId'],
    ];
    for (const [call, field] of cases) {
      // Each method returns a rejected promise rather than throwing.
      let promise: Promise<unknown> | undefined;
      expect(() => (promise = call())).not.toThrow();
      const error = await rejectionOf(promise!);
      expect(error).toBeInstanceOf(GatewayOptionsError);
      expect((error as GatewayOptionsError).option).toBe(field);
      expect((error as Error).message).toContain(`"${field}"`);
    }
    await Promise.all([heartbeatRoundTrip(gateway, 0), heartbeatRoundTrip(gateway, 1)]);
    expect(gateway.frames.filter((f) => f.op !== GatewayOpcodes.Heartbeat)).toHaveLength(framesBefore);
  });
});

void describe('ClusterService', () => {
  void it('on() gives typed events of one name from every shard; info() has one ready entry per shard; allReady is true', async () => {
    const { gateway, cluster, shards } = await start();
    const messages: { shardId: number; s: number; content: string; guildId: string | undefined }[] = [];
    const subscription = cluster.on('MESSAGE_CREATE').subscribe((event) => {
      // `event.d` is typed as MESSAGE_CREATE data.
      const content: string = event.d.content;
      messages.push({ shardId: event.shardId, s: event.s, content, guildId: event.d.guild_id });
    });
    try {
      const next = cluster.once('MESSAGE_CREATE');
      const s0 = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1, { guildId: GUILD_ON_SHARD_0, content: 'zero' }));
      gateway.dispatch(0, 'TYPING_START', { channel_id: '1', user_id: '2', timestamp: 3 });
      const s1 = gateway.dispatch(1, 'MESSAGE_CREATE', createMessage(2, { guildId: GUILD_ON_SHARD_1, content: 'one' }));
      const first = await next;
      expect(['zero', 'one']).toContain(first.d.content);
      await eventually(() => messages.length >= 2, 15_000, 'two messages');
      // Both shards read a frame sent after the events: every event before it has been emitted.
      await Promise.all([heartbeatRoundTrip(gateway, 0), heartbeatRoundTrip(gateway, 1)]);
      expect([...messages].sort((a, b) => a.shardId - b.shardId)).toEqual([
        { shardId: 0, s: s0, content: 'zero', guildId: GUILD_ON_SHARD_0 },
        { shardId: 1, s: s1, content: 'one', guildId: GUILD_ON_SHARD_1 },
      ]);
    } finally {
      subscription.unsubscribe();
    }

    expect(cluster.total).toBe(2);
    expect(cluster.allReady).toBe(true);
    await eventually(() => cluster.info().every((s) => s.guildsReady), 15_000, 'guilds ready');
    const info = cluster.info();
    expect(info.map((s) => [s.id, s.state])).toEqual([
      [0, ShardState.Ready],
      [1, ShardState.Ready],
    ]);
    for (const entry of info) expect(entry.guilds).toEqual({ available: 1, unavailable: 0 });
    expect(shards.info()).toHaveLength(2);
    expect(shards.info(1)?.id).toBe(1);
    expect(shards.info(5)).toBeUndefined();
    await cluster.ready();
  });
});
