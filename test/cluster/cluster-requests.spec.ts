import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import {
  Cluster,
  GatewayOptionsError,
  MalformedPayloadError,
  ShardCommandError,
  runForwardedShardCall,
  type GatewayDispatch,
} from '../../lib/core';
import type { LocalGateway, RecordedFrame } from '../../lib/nest/testing';
import { ClusterHarness, rejectionOf } from '../helpers/cluster-test-kit';
import { eventually } from '../helpers/gateway-test-kit';

// Member, soundboard and forwarded calls on a bare Cluster: the framework-free core owns them, no Nest involved.

/** Guilds Discord routes to shard 0 and shard 1 of a two-shard bot. */
const GUILD_ON_0 = '81384788765712384';
const GUILD_ON_1 = '1023234123812343808';

const harness = new ClusterHarness();

void afterEach(async () => {
  await harness.closeAll();
});

/** A ready two-shard cluster on a local gateway whose guilds have `membersPerGuild` members each. */
async function twoShards(gatewayCooldownMs: number, clusterCooldownMs: number, membersPerGuild = 20): Promise<{ gateway: LocalGateway; cluster: Cluster; events: GatewayDispatch[] }> {
  const gateway = await harness.gatewayWith({ shards: 2, guilds: [GUILD_ON_0, GUILD_ON_1], membersPerGuild, memberRequestCooldownMs: gatewayCooldownMs, heartbeatInterval: 5_000 });
  const cluster = harness.clusterOn(gateway, { memberRequestCooldownMs: clusterCooldownMs });
  const events: GatewayDispatch[] = [];
  cluster.dispatch$.subscribe((event) => events.push(event));
  await cluster.up();
  expect([cluster.shardIdForGuild(GUILD_ON_0), cluster.shardIdForGuild(GUILD_ON_1)]).toEqual([0, 1]);
  return { gateway, cluster, events };
}

function memberRequests(gateway: LocalGateway, guildId: string): RecordedFrame[] {
  return gateway.framesOf(GatewayOpcodes.RequestGuildMembers).filter((f) => f.d.guild_id === guildId);
}

void describe('Cluster member requests', () => {
  void it('collects every GUILD_MEMBERS_CHUNK of a full list through the guild’s shard', async () => {
    const { gateway, cluster, events } = await twoShards(0, 0, 2500);
    const result = await cluster.requestGuildMembers({ guildId: GUILD_ON_1, timeoutMs: 10_000 });
    expect(result.guildId).toBe(GUILD_ON_1);
    expect(result.members).toHaveLength(2500);
    expect(new Set(result.members.map((m) => m.user.id)).size).toBe(2500);
    const chunks = events.filter((e) => e.t === 'GUILD_MEMBERS_CHUNK' && (e.d as { nonce?: string }).nonce === result.nonce);
    expect(chunks.map((c) => c.shardId)).toEqual([1, 1, 1]);
    const sent = memberRequests(gateway, GUILD_ON_1);
    expect(sent.map((f) => [f.shardId, f.d])).toEqual([[1, { guild_id: GUILD_ON_1, query: '', limit: 0, presences: false, nonce: result.nonce }]]);
  });

  void it('a second full-list request for a guild waits for memberRequestCooldownMs; another guild’s goes out at once', async () => {
    // The gateway would answer a request within its own window with RATE_LIMITED: none comes, as the cluster waits.
    const { gateway, cluster, events } = await twoShards(200, 1_000);
    const first = cluster.requestGuildMembers({ guildId: GUILD_ON_0, timeoutMs: 10_000 });
    const second = cluster.requestGuildMembers({ guildId: GUILD_ON_0, timeoutMs: 10_000 });
    const other = cluster.requestGuildMembers({ guildId: GUILD_ON_1, timeoutMs: 10_000 });
    expect((await first).members).toHaveLength(20);
    expect((await other).members).toHaveLength(20);
    expect((await second).members).toHaveLength(20);
    const sent = memberRequests(gateway, GUILD_ON_0);
    expect(sent).toHaveLength(2);
    expect(memberRequests(gateway, GUILD_ON_1)[0].at).toBeLessThan(sent[1].at);
    expect(events.filter((e) => e.t === 'RATE_LIMITED')).toEqual([]);
  });

  void it('a request answered with RATE_LIMITED is sent again after retry_after and then answered', async () => {
    const { gateway, cluster, events } = await twoShards(1_500, 0);
    const first = await cluster.requestGuildMembers({ guildId: GUILD_ON_1, timeoutMs: 10_000 });
    const second = await cluster.requestGuildMembers({ guildId: GUILD_ON_1, timeoutMs: 10_000 });
    expect(second.members).toHaveLength(20);
    expect(second.nonce).not.toBe(first.nonce);
    const limited = events.filter((e) => e.t === 'RATE_LIMITED');
    expect(limited.length).toBeGreaterThanOrEqual(1);
    expect(limited[0]).toMatchObject({ shardId: 1, d: { opcode: GatewayOpcodes.RequestGuildMembers, meta: { nonce: second.nonce } } });
    expect(memberRequests(gateway, GUILD_ON_1).filter((f) => f.d.nonce === second.nonce)).toHaveLength(limited.length + 1);
  });

  void it('a malformed chunk fails the request with a MalformedPayloadError, counted once; invalid options send nothing', async () => {
    const { gateway, cluster } = await twoShards(0, 0);
    const errors: Error[] = [];
    cluster.error$.subscribe((error) => errors.push(error));
    gateway.rewriteDispatches((t, d) => (t === 'GUILD_MEMBERS_CHUNK' ? { ...(d as object), chunk_index: 9 } : d));
    const error = await rejectionOf(cluster.requestGuildMembers({ guildId: GUILD_ON_0, timeoutMs: 10_000 }));
    expect(error).toBeInstanceOf(MalformedPayloadError);
    expect((error as MalformedPayloadError).request).toBe(`the member request for guild ${GUILD_ON_0}`);
    expect((error as MalformedPayloadError).problem).toBe('d.chunk_index is not an integer from 0 to chunk_count - 1');
    expect(cluster.malformedCounts()).toEqual([{ shardId: 0, event: 'GUILD_MEMBERS_CHUNK', count: 1 }]);
    expect(errors.filter((e) => e instanceof MalformedPayloadError)).toHaveLength(1);

    const before = gateway.framesOf(GatewayOpcodes.RequestGuildMembers).length;
    for (const [options, option] of [
      [{ guildId: 'x' }, 'guildId'],
      [{ guildId: GUILD_ON_0, shardId: 2 }, 'shardId'],
      [{ guildId: GUILD_ON_0, nonce: 'n'.repeat(33) }, 'nonce'],
    ] as const) {
      const invalid = await rejectionOf(cluster.requestGuildMembers(options));
      expect(invalid).toBeInstanceOf(GatewayOptionsError);
      expect((invalid as GatewayOptionsError).option).toBe(option);
    }
    expect(gateway.framesOf(GatewayOpcodes.RequestGuildMembers)).toHaveLength(before);
  });
});

void describe('Cluster soundboard requests', () => {
  void it('asks each guild through its own shard and returns one entry per guild', async () => {
    const { gateway, cluster } = await twoShards(0, 0);
    expect(await cluster.requestSoundboardSounds([GUILD_ON_0, GUILD_ON_1], 10_000)).toEqual({ [GUILD_ON_0]: [], [GUILD_ON_1]: [] });
    expect(gateway.framesOf(GatewayOpcodes.RequestSoundboardSounds, 0).map((f) => f.d)).toEqual([{ guild_ids: [GUILD_ON_0] }]);
    expect(gateway.framesOf(GatewayOpcodes.RequestSoundboardSounds, 1).map((f) => f.d)).toEqual([{ guild_ids: [GUILD_ON_1] }]);

    gateway.rewriteDispatches((t, d) => (t === 'SOUNDBOARD_SOUNDS' ? { ...(d as object), soundboard_sounds: 'none' } : d));
    const error = await rejectionOf(cluster.requestSoundboardSounds([GUILD_ON_1], { timeoutMs: 10_000 }));
    expect(error).toBeInstanceOf(MalformedPayloadError);
    expect((error as MalformedPayloadError).problem).toBe('d.soundboard_sounds is not an array');
  });
});

void describe('Calls forwarded by another process', () => {
  void it('run on the cluster: send and member requests for its shard, clear errors otherwise', async () => {
    const { gateway, cluster } = await twoShards(0, 0);
    const presence = { op: GatewayOpcodes.PresenceUpdate, d: { since: null, activities: [], status: 'idle', afk: false } };
    await runForwardedShardCall(cluster, 'send', 1, presence);
    await eventually(() => gateway.framesOf(GatewayOpcodes.PresenceUpdate, 1).length === 1, 5_000, 'the forwarded op 3');

    const members = (await runForwardedShardCall(cluster, 'requestGuildMembers', 1, { guildId: GUILD_ON_1, timeoutMs: 10_000 })) as { members: unknown[] };
    expect(members.members).toHaveLength(20);

    const wrongShard = await rejectionOf(runForwardedShardCall(cluster, 'requestGuildMembers', 0, { guildId: GUILD_ON_1 }));
    expect(wrongShard).toBeInstanceOf(GatewayOptionsError);
    expect(wrongShard.message).toContain('is not on shard 0');
    await cluster.removeShard(0, { resumable: true });
    const notHere = await rejectionOf(runForwardedShardCall(cluster, 'send', 0, presence));
    expect(notHere).toBeInstanceOf(ShardCommandError);
    expect(notHere.message).toContain('does not run the shard right now');
    const unknown = await rejectionOf(runForwardedShardCall(cluster, 'reboot' as never, 1, null));
    expect(unknown).toBeInstanceOf(ShardCommandError);
    expect(gateway.framesOf(GatewayOpcodes.RequestGuildMembers, 0)).toEqual([]);
  });
});
