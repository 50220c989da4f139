import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { Injectable } from '@nestjs/common';
import { GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import { Subject } from 'rxjs';
import { Cluster, ClusterService, GatewayModule, OnEvent, type GatewayEventContext, type ShardRequestChannelInfoOptions, type GatewayModuleOptions } from '../../lib/nest';
import { GatewayFatalError, GatewayOptionsError, ShardState, type ClusterDebugEntry, type ResumableSessions } from '../../lib/core';
import type { LocalGateway, LocalGatewayOptions } from '../../lib/nest/testing';
import { waitFor } from '../helpers/gateway-test-kit';
import {
  GUILD_ON_SHARD_0,
  GUILD_ON_SHARD_1,
  NestHarness,
  VOICE_CHANNEL,
  moduleOptions,
  rejectionOf,
  thrownBy,
  startTwoShardApp,
  type RunningApp,
} from './nest-test-kit';

const harness = new NestHarness();

void afterEach(async () => {
  await harness.cleanup();
});

/** A two-shard gateway with both guilds, and a ready app connected to it. */
function start(
  gatewayOptions: LocalGatewayOptions = {},
  options: Partial<GatewayModuleOptions> = {},
  providers: Parameters<typeof startTwoShardApp>[3] = [],
): Promise<RunningApp> {
  return startTwoShardApp(harness, gatewayOptions, options, providers);
}

/** The next frame with opcode `op`, from the frames recorded from now on. */
function nextFrame(gateway: LocalGateway, op: number) {
  return gateway.waitForFrame((f) => f.op === op, 15_000);
}

void describe('ClusterService error and debug streams', () => {
  void it('errors$ reports a fatal close with its shard and code, and a payload a shard could not decode', async () => {
    const { gateway, cluster } = await start();
    const decodeError = waitFor(cluster.errors$, (e) => /not valid JSON/.test(e.message));
    gateway.sendInvalidJson(1);
    expect((await decodeError).message).toBe('Shard 1: received a payload that is not valid JSON');
    // The shard resumes; then a fatal close on shard 0.
    await waitFor(cluster.states$, (s) => s.shardId === 1 && s.state === ShardState.Ready);
    const fatal = waitFor(cluster.errors$, (e) => e instanceof GatewayFatalError);
    gateway.closeShard(0, 4004, 'Authentication failed.');
    const error = (await fatal) as GatewayFatalError;
    expect(error.shardId).toBe(0);
    expect(error.code).toBe(4004);
  });

  void it('debug$ carries the lines of the shards, with their ids, and of the cluster', async () => {
    const { gateway, cluster } = await start();
    const lines: ClusterDebugEntry[] = [];
    const subscription = cluster.debug$.subscribe((line) => lines.push(line));
    try {
      const reconnecting = waitFor(cluster.debug$, (l) => l.shardId === 1 && /reconnect/.test(l.message));
      gateway.reconnect(1);
      expect((await reconnecting).shardId).toBe(1);
      await waitFor(cluster.states$, (s) => s.shardId === 1 && s.state === ShardState.Ready);
      expect(lines.every((l) => !l.message.includes(gateway.token))).toBe(true);
    } finally {
      subscription.unsubscribe();
    }
  });
});

void describe('ClusterService.collectInfo', () => {
  void it('asks worker threads for fresh figures, where info() returns their last report', async () => {
    const gateway = await harness.gateway({ shards: 2, guilds: [GUILD_ON_SHARD_0] });
    // Pings and session reports far apart: between them, info() only has what the workers reported at READY.
    const strategy = { type: 'workers' as const, pingIntervalMs: 60_000, sessionReportIntervalMs: 60_000 };
    const app = await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, { strategy }))] });
    const cluster = app.get(ClusterService);
    const sequence = [1, 2, 3].map((i) => gateway.dispatch(0, 'TYPING_START', { channel_id: VOICE_CHANNEL, user_id: String(i), timestamp: i }))[2];
    const stale = cluster.info().find((s) => s.id === 0)!.sequence;
    expect(stale).toBeLessThan(sequence);
    // The worker may not have read the events yet when it answers: ask again until it has.
    const deadline = Date.now() + 5_000;
    let fresh = (await cluster.collectInfo(2_000)).find((s) => s.id === 0)!.sequence;
    while (fresh !== sequence && Date.now() < deadline) fresh = (await cluster.collectInfo(2_000)).find((s) => s.id === 0)!.sequence;
    expect(fresh).toBe(sequence);
  });
});

void describe('ShardService: shard-explicit commands', () => {
  void it('updateVoiceState, requestGuildMembers and requestSoundboardSounds go through the shard given', async () => {
    const { gateway, shards } = await start({ membersPerGuild: 5 });

    const voice = nextFrame(gateway, GatewayOpcodes.VoiceStateUpdate);
    await shards.updateVoiceState({ guild_id: GUILD_ON_SHARD_1, channel_id: VOICE_CHANNEL, self_mute: false, self_deaf: false }, 0);
    expect((await voice).shardId).toBe(0);

    const members = await shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_1, shardId: 0, query: '', limit: 2 });
    expect(members.members).toHaveLength(2);
    expect(gateway.framesOf(GatewayOpcodes.RequestGuildMembers).map((f) => f.shardId)).toEqual([0]);

    const sounds = await shards.requestSoundboardSounds([GUILD_ON_SHARD_0, GUILD_ON_SHARD_1], { shardId: 1, timeoutMs: 5_000 });
    expect(Object.keys(sounds).sort()).toEqual([GUILD_ON_SHARD_0, GUILD_ON_SHARD_1].sort());
    const requests = gateway.framesOf(GatewayOpcodes.RequestSoundboardSounds);
    expect(requests.map((f) => [f.shardId, f.d.guild_ids])).toEqual([[1, [GUILD_ON_SHARD_0, GUILD_ON_SHARD_1]]]);

    // The timeout alone, as before, still routes by guild.
    await shards.requestSoundboardSounds([GUILD_ON_SHARD_0, GUILD_ON_SHARD_1], 5_000);
    expect(gateway.framesOf(GatewayOpcodes.RequestSoundboardSounds).slice(1).map((f) => f.shardId).sort()).toEqual([0, 1]);

    for (const bad of [2, -1, 0.5]) {
      const error = await rejectionOf(shards.updateVoiceState({ guild_id: GUILD_ON_SHARD_0, channel_id: null, self_mute: false, self_deaf: false }, bad));
      expect(error).toBeInstanceOf(GatewayOptionsError);
      expect((error as GatewayOptionsError).message).toMatch(/shardId/);
    }
  });

  void it('sendToGuild sends a raw command through the shard of the guild', async () => {
    const { gateway, shards } = await start();
    const frame = nextFrame(gateway, GatewayOpcodes.PresenceUpdate);
    await shards.sendToGuild(GUILD_ON_SHARD_1, {
      op: GatewayOpcodes.PresenceUpdate,
      d: { since: null, activities: [], status: PresenceUpdateStatus.Idle, afk: false },
    });
    expect((await frame).shardId).toBe(1);
    expect(await rejectionOf(shards.sendToGuild('not-a-guild', { op: GatewayOpcodes.Heartbeat, d: null }))).toBeInstanceOf(GatewayOptionsError);
  });

  void it('requestGuildMembers sends the nonce the caller gives, and refuses one too long or already in flight', async () => {
    const { gateway, shards } = await start({ membersPerGuild: 3 });
    const result = await shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_0, query: '', limit: 3, nonce: 'audit-42' });
    expect(result.nonce).toBe('audit-42');
    expect(result.members).toHaveLength(3);
    expect(gateway.framesOf(GatewayOpcodes.RequestGuildMembers).map((f) => f.d.nonce)).toEqual(['audit-42']);

    const tooLong = await rejectionOf(shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_0, nonce: 'x'.repeat(33) }));
    expect(tooLong).toBeInstanceOf(GatewayOptionsError);
    expect((tooLong as Error).message).toMatch(/nonce/);

    // The first request is in flight (its nonce taken) as soon as the call returns.
    const pending = shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_1, userIds: ['1000000000000000099'], nonce: 'same', timeoutMs: 5_000 });
    const duplicate = await rejectionOf(shards.requestGuildMembers({ guildId: GUILD_ON_SHARD_0, userIds: ['1000000000000000098'], nonce: 'same' }));
    expect(duplicate).toBeInstanceOf(GatewayOptionsError);
    expect((duplicate as Error).message).toMatch(/nonce.*in flight/);
    expect((await pending).notFound).toEqual(['1000000000000000099']);
  });
});

void describe('ShardService.requestChannelInfo (op 43)', () => {
  void it('sends op 43 through the guild shard and resolves with its CHANNEL_INFO', async () => {
    const { gateway, shards } = await start();
    gateway.setChannelInfo(GUILD_ON_SHARD_1, [{ id: VOICE_CHANNEL, status: 'raid night', voice_start_time: 1_700_000_000 }]);
    const info = await shards.requestChannelInfo(GUILD_ON_SHARD_1, { timeoutMs: 5_000 });
    expect(info).toEqual({ guild_id: GUILD_ON_SHARD_1, channels: [{ id: VOICE_CHANNEL, status: 'raid night', voice_start_time: 1_700_000_000 }] });
    const frames = gateway.framesOf(GatewayOpcodes.RequestChannelInfo);
    expect(frames.map((f) => [f.shardId, f.d])).toEqual([[1, { guild_id: GUILD_ON_SHARD_1, fields: ['status', 'voice_start_time'] }]]);
  });

  void it('gives each of two requests for one guild the reply to its own fields, and takes an explicit shard', async () => {
    const { gateway, shards } = await start();
    gateway.setChannelInfo(GUILD_ON_SHARD_0, [{ id: VOICE_CHANNEL, status: 'open', voice_start_time: 1_700_000_000 }]);
    const [statusOnly, startOnly] = await Promise.all([
      shards.requestChannelInfo(GUILD_ON_SHARD_0, { fields: ['status'] }),
      shards.requestChannelInfo(GUILD_ON_SHARD_0, { fields: ['voice_start_time'], shardId: 1 }),
    ]);
    expect(statusOnly.channels).toEqual([{ id: VOICE_CHANNEL, status: 'open' }]);
    expect(startOnly.channels).toEqual([{ id: VOICE_CHANNEL, voice_start_time: 1_700_000_000 }]);
    expect(gateway.framesOf(GatewayOpcodes.RequestChannelInfo).map((f) => [f.shardId, f.d.fields])).toEqual([
      [0, ['status']],
      [1, ['voice_start_time']],
    ]);
    const invalid: [string, ShardRequestChannelInfoOptions, string][] = [
      ['nope', {}, 'guildId'],
      [GUILD_ON_SHARD_0, { fields: [] }, 'fields'],
      [GUILD_ON_SHARD_0, { timeoutMs: 0 }, 'timeoutMs'],
    ];
    for (const [guild, options, field] of invalid) {
      const error = await rejectionOf(shards.requestChannelInfo(guild, options));
      expect(error).toBeInstanceOf(GatewayOptionsError);
      expect((error as Error).message).toContain(field);
    }
  });

  void it('rejects with a clear message when no CHANNEL_INFO comes', async () => {
    const { gateway, shards } = await start();
    // The gateway does not read shard 0's socket for a minute: the request stays unanswered.
    gateway.slowReads(0, 60_000);
    const error = await rejectionOf(shards.requestChannelInfo(GUILD_ON_SHARD_0, { timeoutMs: 200 }));
    expect((error as Error).message).toBe(`Channel info request for guild ${GUILD_ON_SHARD_0} got no CHANNEL_INFO within 200 ms`);
  });
});

/** Records every dispatch its catch-all handler receives. */
@Injectable()
class EverythingRecorder {
  readonly seen: string[] = [];
  readonly seen$ = new Subject<string>();
  readonly typing: string[] = [];

  @OnEvent('*')
  onAny(_data: unknown, context: GatewayEventContext): void {
    this.seen.push(context.event);
    this.seen$.next(context.event);
  }

  @OnEvent('TYPING_START')
  onTyping(data: { user_id: string }): void {
    this.typing.push(data.user_id);
  }
}

void describe("@OnEvent('*')", () => {
  void it('receives every dispatch, events no other handler names included, and makes the shards decode them all', async () => {
    const { gateway, app } = await start({}, {}, [EverythingRecorder]);
    const recorder = app.get(EverythingRecorder);
    expect(recorder.seen).toContain('GUILD_CREATE');
    expect(app.get(Cluster).dispatchFilter!.decodesAll).toBe(true);
    const settled = waitFor(recorder.seen$, (t) => t === 'WEBHOOKS_UPDATE');
    gateway.dispatch(0, 'TYPING_START', { channel_id: VOICE_CHANNEL, user_id: '7', timestamp: 1 });
    gateway.dispatch(0, 'WEBHOOKS_UPDATE', { guild_id: GUILD_ON_SHARD_0, channel_id: VOICE_CHANNEL });
    await settled;
    expect(recorder.seen.slice(-2)).toEqual(['TYPING_START', 'WEBHOOKS_UPDATE']);
    expect(recorder.typing).toEqual(['7']);
  });
});

void describe('the sessions option', () => {
  void it('resumes the sessions an earlier run returned, without a hand-filled session store', async () => {
    const gateway = await harness.gateway({ shards: 2, guilds: [GUILD_ON_SHARD_0] });
    const first = await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway))] });
    const sessions: ResumableSessions = await first.get(ClusterService).downResumable();
    await harness.closeApp(first);
    expect(Object.keys(sessions)).toEqual(['0', '1']);

    const before = gateway.frames.length;
    await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, { sessions }))] });
    const handshakes = gateway.frames.slice(before).filter((f) => f.op === GatewayOpcodes.Identify || f.op === GatewayOpcodes.Resume);
    expect(handshakes.map((f) => f.op)).toEqual([GatewayOpcodes.Resume, GatewayOpcodes.Resume]);
    expect(handshakes.map((f) => f.d.session_id).sort()).toEqual([sessions[0].sessionId, sessions[1].sessionId].sort());
  });

  void it('names the invalid entry', async () => {
    const gateway = await harness.gateway({ shards: 1 });
    const cases: [unknown, string][] = [
      [{ 0: { sessionId: '', sequence: 1, resumeUrl: 'wss://x' } }, 'sessions[0].sessionId'],
      [{ 0: { sessionId: 'a', sequence: -1, resumeUrl: 'wss://x' } }, 'sessions[0].sequence'],
      [{ 0: { sessionId: 'a', sequence: null, resumeUrl: 'https://x' } }, 'sessions[0].resumeUrl'],
      [{ x: { sessionId: 'a', sequence: null, resumeUrl: 'wss://x' } }, 'sessions[x]'],
    ];
    for (const [sessions, option] of cases) {
      const error = thrownBy(() => GatewayModule.forRoot(moduleOptions(gateway, { sessions: sessions as never })));
      expect(error).toBeInstanceOf(GatewayOptionsError);
      expect((error as GatewayOptionsError).message).toContain(option);
    }
  });
});
