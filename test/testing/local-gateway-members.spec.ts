import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import WebSocket from 'ws';
import {
  GatewayIntentBits,
  GatewayOpcodes,
  type APIGuildMember,
  type GatewayGuildMembersChunkDispatchData,
  type GatewayRateLimitedRequestGuildMembersDispatchData,
  type GatewayRequestGuildMembersData,
  type GatewaySoundboardSoundsDispatchData,
} from 'discord-api-types/v10';
import type { GatewayDispatch, Shard } from '../../lib/nest';
import type { LocalGateway, LocalGatewayOptions } from '../../lib/nest/testing';
import { collectDispatches, createShard, eventually, startGateway, waitFor } from '../helpers/gateway-test-kit';

const GUILD_A = '81384788765712384';
const GUILD_B = '222078108977594368';
const UNKNOWN_USER = '1000000000000000099';
const INTENTS = GatewayIntentBits.Guilds | GatewayIntentBits.GuildMembers;

let gateway: LocalGateway | null = null;
let shard: Shard | null = null;

void afterEach(async () => {
  await shard?.close();
  await gateway?.close();
  shard = null;
  gateway = null;
});

/** A gateway with `membersPerGuild` members per guild and a ready shard connected to it. */
async function connect(options: LocalGatewayOptions = {}): Promise<{ gateway: LocalGateway; shard: Shard }> {
  gateway = await startGateway({ guilds: [GUILD_A, GUILD_B], membersPerGuild: 2500, ...options });
  shard = createShard(gateway, { intents: INTENTS });
  await shard.connect();
  return { gateway, shard };
}

/** Sends op 8 and resolves with every GUILD_MEMBERS_CHUNK carrying `nonce`, once `chunk_count` of them arrived. */
async function requestMembers(
  target: Shard,
  d: GatewayRequestGuildMembersData & { nonce: string },
  ms = 5_000,
): Promise<GatewayGuildMembersChunkDispatchData[]> {
  const chunks: GatewayGuildMembersChunkDispatchData[] = [];
  const done = waitFor(
    target.dispatch$,
    (event: GatewayDispatch) => {
      if (event.t !== 'GUILD_MEMBERS_CHUNK') return false;
      const chunk = event.d as GatewayGuildMembersChunkDispatchData;
      if (chunk.nonce !== d.nonce) return false;
      chunks.push(chunk);
      return chunks.length >= chunk.chunk_count;
    },
    ms,
  );
  await target.send({ op: GatewayOpcodes.RequestGuildMembers, d });
  await done;
  return chunks;
}

/** Sends a full-list request and resolves with its `RATE_LIMITED` dispatch, or rejects if none comes. */
async function expectRateLimited(target: Shard, guildId: string, nonce: string): Promise<GatewayRateLimitedRequestGuildMembersDispatchData> {
  const limited = waitFor(target.dispatch$, (event) => event.t === 'RATE_LIMITED', 15_000);
  await target.send({ op: GatewayOpcodes.RequestGuildMembers, d: { guild_id: guildId, query: '', limit: 0, nonce } });
  return (await limited).d as GatewayRateLimitedRequestGuildMembersDispatchData;
}

function allMembers(chunks: GatewayGuildMembersChunkDispatchData[]): APIGuildMember[] {
  return [...chunks].sort((a, b) => a.chunk_index - b.chunk_index).flatMap((c) => c.members);
}

void describe('local gateway: op 8 Request Guild Members', () => {
  void it('answers a full-list request for 2500 members with 3 indexed chunks of at most 1000, echoing the nonce', async () => {
    const { shard } = await connect();
    const chunks = await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 0, nonce: 'full-a' });

    expect(chunks).toHaveLength(3);
    expect(chunks.map((c) => c.chunk_index).sort()).toEqual([0, 1, 2]);
    for (const chunk of chunks) {
      expect(chunk.chunk_count).toBe(3);
      expect(chunk.guild_id).toBe(GUILD_A);
      expect(chunk.nonce).toBe('full-a');
      expect(chunk.members.length).toBeLessThanOrEqual(1000);
      expect(chunk.not_found).toBeUndefined();
    }
    const members = allMembers(chunks);
    expect(members).toHaveLength(2500);
    expect(new Set(members.map((m) => m.user.id)).size).toBe(2500);
    for (const member of members.slice(0, 50)) {
      expect(member.user.id).toMatch(/^\d{17,20}$/);
      expect(typeof member.user.username).toBe('string');
      expect(Number.isNaN(Date.parse(member.joined_at!))).toBe(false);
    }
  });

  void it('gives each guild its own stable member list', async () => {
    const { shard } = await connect({ membersPerGuild: 30 });
    const a1 = allMembers(await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 10, nonce: 'a1' }));
    const a2 = allMembers(await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 10, nonce: 'a2' }));
    const b = allMembers(await requestMembers(shard, { guild_id: GUILD_B, query: '', limit: 10, nonce: 'b' }));
    expect(a1).toHaveLength(10);
    expect(a2).toEqual(a1);
    expect(b.map((m) => m.user.id)).not.toEqual(a1.map((m) => m.user.id));
  });

  void it('answers user_ids with the members that exist and lists the unknown ids in not_found', async () => {
    const { shard } = await connect();
    const sample = allMembers(await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 5, nonce: 'sample' }));
    expect(sample).toHaveLength(5);
    const wanted = [sample[1].user.id, sample[3].user.id];

    const chunks = await requestMembers(shard, { guild_id: GUILD_A, user_ids: [...wanted, UNKNOWN_USER], nonce: 'ids' });
    expect(chunks).toHaveLength(1);
    expect(chunks[0]).toMatchObject({ guild_id: GUILD_A, chunk_index: 0, chunk_count: 1, nonce: 'ids' });
    expect(chunks[0].members.map((m) => m.user.id).sort()).toEqual([...wanted].sort());
    expect(chunks[0].not_found).toEqual([UNKNOWN_USER]);

    const none = await requestMembers(shard, { guild_id: GUILD_A, user_ids: UNKNOWN_USER, nonce: 'none' });
    expect(none).toHaveLength(1);
    expect(none[0].members).toEqual([]);
    expect(none[0].not_found).toEqual([UNKNOWN_USER]);
  });

  void it('filters a query by username prefix and honours limit', async () => {
    const { shard } = await connect();
    const everyone = allMembers(await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 0, nonce: 'all' }));
    const prefix = everyone[0].user.username.slice(0, 4);
    const matching = everyone.filter((m) => m.user.username.startsWith(prefix));
    expect(matching.length).toBeGreaterThan(0);
    expect(matching.length).toBeLessThan(everyone.length);

    const found = allMembers(await requestMembers(shard, { guild_id: GUILD_A, query: prefix, limit: 100, nonce: 'q' }));
    expect(found.map((m) => m.user.id)).toEqual(matching.slice(0, 100).map((m) => m.user.id));
    for (const member of found) expect(member.user.username.startsWith(prefix)).toBe(true);

    const limited = allMembers(await requestMembers(shard, { guild_id: GUILD_A, query: prefix.slice(0, 1), limit: 3, nonce: 'q3' }));
    expect(limited).toHaveLength(3);
    for (const member of limited) expect(member.user.username.startsWith(prefix.slice(0, 1))).toBe(true);

    const nobody = await requestMembers(shard, { guild_id: GUILD_A, query: 'zzzz-nobody', limit: 10, nonce: 'q0' });
    expect(nobody).toHaveLength(1);
    expect(nobody[0]).toMatchObject({ members: [], chunk_index: 0, chunk_count: 1 });
  });

  void it('answers a second full-list request for the same guild within the cooldown with RATE_LIMITED, per guild', async () => {
    const { shard } = await connect({ membersPerGuild: 20 });
    const events = collectDispatches(shard);
    try {
      await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 0, nonce: 'first' });
      const limited = await expectRateLimited(shard, GUILD_A, 'second');

      expect(limited.opcode).toBe(GatewayOpcodes.RequestGuildMembers);
      expect(limited.meta).toEqual({ guild_id: GUILD_A, nonce: 'second' });
      expect(typeof limited.retry_after).toBe('number');
      expect(limited.retry_after).toBeGreaterThan(0);
      expect(limited.retry_after).toBeLessThanOrEqual(30);

      // Another guild has its own window; a query request is not limited.
      await requestMembers(shard, { guild_id: GUILD_B, query: '', limit: 0, nonce: 'other-guild' });
      await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 5, nonce: 'partial' });
      expect(events.events.some((e) => e.t === 'GUILD_MEMBERS_CHUNK' && (e.d as { nonce?: string }).nonce === 'second')).toBe(false);
    } finally {
      events.stop();
    }
  });

  void it('answers a full-list request again once memberRequestCooldownMs has passed', async () => {
    const { shard } = await connect({ membersPerGuild: 20, memberRequestCooldownMs: 400 });
    await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 0, nonce: 'one' });
    const limited = await expectRateLimited(shard, GUILD_A, 'two');
    expect(limited.retry_after).toBeLessThanOrEqual(0.4);
    await new Promise((resolve) => setTimeout(resolve, Math.ceil(limited.retry_after * 1000) + 50));
    const again = await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 0, nonce: 'three' });
    expect(allMembers(again)).toHaveLength(20);
  });

  void it('sends one empty chunk when the guild has no members, and drops a nonce over 32 bytes', async () => {
    const { shard } = await connect({ membersPerGuild: 0 });
    const chunks = await requestMembers(shard, { guild_id: GUILD_A, query: '', limit: 0, nonce: 'empty' });
    expect(chunks).toEqual([{ guild_id: GUILD_A, members: [], chunk_index: 0, chunk_count: 1, nonce: 'empty' }]);

    const long = 'x'.repeat(33);
    const chunk = waitFor(shard.dispatch$, (e) => e.t === 'GUILD_MEMBERS_CHUNK', 15_000);
    await shard.send({ op: GatewayOpcodes.RequestGuildMembers, d: { guild_id: GUILD_B, query: 'a', limit: 1, nonce: long } });
    expect((await chunk).d).not.toHaveProperty('nonce');
  });

  void it('closes with 4003 a connection that requests members before IDENTIFY', async () => {
    const { gateway } = await connect();
    const ws = new WebSocket(`${gateway.url}/?v=10&encoding=json`);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      ws.send(JSON.stringify({ op: GatewayOpcodes.RequestGuildMembers, d: { guild_id: GUILD_A, query: '', limit: 0 } }));
      expect(await closed).toBe(4003);
    } finally {
      ws.terminate();
    }
  });
});

void describe('local gateway: op 31 Request Soundboard Sounds', () => {
  void it('answers one SOUNDBOARD_SOUNDS per requested guild', async () => {
    const { shard } = await connect();
    const events = collectDispatches(shard);
    try {
      await shard.send({ op: GatewayOpcodes.RequestSoundboardSounds, d: { guild_ids: [GUILD_A, GUILD_B] } });
      await eventually(() => events.events.filter((e) => e.t === 'SOUNDBOARD_SOUNDS').length >= 2, 15_000, 'two SOUNDBOARD_SOUNDS');
      const sounds = events.events.filter((e) => e.t === 'SOUNDBOARD_SOUNDS').map((e) => e.d as GatewaySoundboardSoundsDispatchData);
      expect(sounds).toHaveLength(2);
      expect(sounds.map((s) => s.guild_id).sort()).toEqual([GUILD_A, GUILD_B].sort());
      for (const s of sounds) expect(s.soundboard_sounds).toEqual([]);
    } finally {
      events.stop();
    }
  });
});
