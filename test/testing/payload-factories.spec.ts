import { describe, it } from 'node:test';
import { expect } from 'expect';
import { ChannelType, PresenceUpdateStatus } from 'discord-api-types/v10';
import {
  createGuild,
  createGuildMemberUpdate,
  createGuildMembers,
  createMember,
  createMessage,
  createPresenceUpdate,
  createReactionAdd,
  createTypingStart,
  createUser,
} from '../../lib/nest/testing';
import { mulberry32 } from '../../lib/core/testing/seeded-random';

const GUILD_ID = '81384788765712384';
const DISCORD_EPOCH = 1_420_070_400_000n;
/** Upper bound of generated times: the factories' reference "now", 2025-06-01. */
const LATEST_MS = Date.UTC(2025, 5, 1);

/** Every factory, called with only a seed. */
const FACTORIES: Record<string, (seed: number) => unknown> = {
  createUser: (seed) => createUser(seed),
  createMember: (seed) => createMember(seed),
  createMessage: (seed) => createMessage(seed),
  createGuild: (seed) => createGuild(seed),
  createPresenceUpdate: (seed) => createPresenceUpdate(seed, GUILD_ID),
  createTypingStart: (seed) => createTypingStart(seed, GUILD_ID),
  createReactionAdd: (seed) => createReactionAdd(seed, GUILD_ID),
  createGuildMemberUpdate: (seed) => createGuildMemberUpdate(seed, GUILD_ID),
};

/** Every value of a key named `id` or ending in `_id`, plus role ids, except activity ids (which are not snowflakes). */
function collectIds(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) {
    for (const item of value) collectIds(item, out);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'activities') continue;
      if ((key === 'id' || key.endsWith('_id')) && typeof child === 'string') out.push(child);
      else if (key === 'roles' && Array.isArray(child)) out.push(...child.filter((r): r is string => typeof r === 'string'));
      else collectIds(child, out);
    }
  }
  return out;
}

/** Throws unless `id` is a decimal snowflake whose timestamp lies between the Discord epoch and the reference date. */
function expectSnowflake(id: string): void {
  expect(id).toMatch(/^[1-9]\d{16,19}$/);
  const ms = Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
  expect(ms).toBeGreaterThanOrEqual(Number(DISCORD_EPOCH));
  expect(ms).toBeLessThanOrEqual(LATEST_MS);
}

void describe('seeded random', () => {
  void it('mulberry32 repeats its sequence for a seed, differs across seeds and stays in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const seqA = Array.from({ length: 100 }, () => a());
    const seqB = Array.from({ length: 100 }, () => b());
    const seqC = Array.from({ length: 100 }, () => c());
    expect(seqA).toEqual(seqB);
    expect(seqA).not.toEqual(seqC);
    for (const x of seqA) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
    expect(new Set(seqA).size).toBeGreaterThan(95);
  });
});

void describe('payload factories', () => {
  for (const [name, factory] of Object.entries(FACTORIES)) {
    void it(`${name}: the same seed gives the same object, another seed a different one`, () => {
      expect(factory(7)).toEqual(factory(7));
      expect(JSON.stringify(factory(7))).toBe(JSON.stringify(factory(7)));
      expect(factory(7)).not.toEqual(factory(8));
    });

    void it(`${name}: every id is a snowflake string with a plausible timestamp`, () => {
      for (const seed of [0, 1, 99, 123_456, 0xffff_ffff]) {
        const ids = collectIds(factory(seed)).filter((id) => id !== GUILD_ID);
        expect(ids.length).toBeGreaterThan(0);
        ids.forEach(expectSnowflake);
      }
    });
  }

  void it('createUser: consecutive seeds give distinct ids and Discord-style usernames', () => {
    const users = Array.from({ length: 2000 }, (_, i) => createUser(1_000 + i));
    expect(new Set(users.map((u) => u.id)).size).toBe(2000);
    for (const user of users) {
      expect(user.username).toMatch(/^[a-z0-9_.]{2,32}$/);
      expect(user.discriminator).toMatch(/^(0|\d{4})$/);
      if (user.avatar !== null) expect(user.avatar).toMatch(/^(a_)?[0-9a-f]{32}$/);
    }
  });

  void it('createMember: has the user of the same seed, an ISO joined_at after the account was created, and overrides win', () => {
    const member = createMember(5);
    expect(member.user).toEqual(createUser(5));
    expect(Array.isArray(member.roles)).toBe(true);
    expect(typeof member.flags).toBe('number');
    const joined = Date.parse(member.joined_at!);
    expect(Number.isNaN(joined)).toBe(false);
    expect(joined).toBeGreaterThanOrEqual(Number((BigInt(member.user.id) >> 22n) + DISCORD_EPOCH));

    const overridden = createMember(5, { nick: 'Custom', roles: ['81384788765712385'] });
    expect(overridden.nick).toBe('Custom');
    expect(overridden.roles).toEqual(['81384788765712385']);
    expect(overridden.user).toEqual(member.user);
  });

  void it('createMessage: the default message has 1 embed, 2 mentions, an attachment, a member and 1.3–2 KB of JSON', () => {
    for (let seed = 0; seed < 50; seed++) {
      const message = createMessage(seed);
      const bytes = Buffer.byteLength(JSON.stringify(message));
      expect(bytes).toBeGreaterThanOrEqual(1_300);
      expect(bytes).toBeLessThanOrEqual(2_000);
      expect(message.embeds).toHaveLength(1);
      const [embed] = message.embeds;
      expect(embed.title).toEqual(expect.any(String));
      expect(embed.description).toEqual(expect.any(String));
      expect(embed.fields!.length).toBeGreaterThan(0);
      expect(embed.footer?.text).toEqual(expect.any(String));
      expect(embed.thumbnail?.url).toMatch(/^https:\/\//);
      expect(message.mentions).toHaveLength(2);
      for (const user of message.mentions) expect(message.content).toContain(`<@${user.id}>`);
      expect(message.attachments.length).toBeGreaterThan(0);
      expect(message.member).toBeDefined();
      expect(message.guild_id).toBeDefined();
      expect(Date.parse(message.timestamp)).toBe(Number((BigInt(message.id) >> 22n) + DISCORD_EPOCH));
    }
  });

  void it('createMessage: honours guildId, channelId, content, embeds and mentions, and guildId null makes a DM', () => {
    const message = createMessage(3, { guildId: GUILD_ID, channelId: '81384788765712386', content: 'hello', embeds: 3, mentions: 5 });
    expect(message.guild_id).toBe(GUILD_ID);
    expect(message.channel_id).toBe('81384788765712386');
    expect(message.content).toBe('hello');
    expect(message.embeds).toHaveLength(3);
    expect(message.mentions).toHaveLength(5);

    const bare = createMessage(3, { embeds: 0, mentions: 0 });
    expect(bare.embeds).toEqual([]);
    expect(bare.mentions).toEqual([]);
    expect(bare.content).not.toContain('<@');

    const dm = createMessage(3, { guildId: null });
    expect(dm.guild_id).toBeUndefined();
    expect(dm.member).toBeUndefined();
    expect(dm.channel_type).toBe(ChannelType.DM);
  });

  void it('createGuild: small defaults with every GUILD_CREATE list present', () => {
    const guild = createGuild(11);
    expect(guild.members).toHaveLength(10);
    expect(guild.member_count).toBe(10);
    expect(guild.channels).toHaveLength(5);
    expect(guild.roles).toHaveLength(5);
    for (const key of ['voice_states', 'threads', 'stage_instances', 'guild_scheduled_events', 'soundboard_sounds'] as const) {
      expect(guild[key]).toEqual([]);
    }
    expect(guild.emojis.length).toBeGreaterThan(0);
    expect(Array.isArray(guild.stickers)).toBe(true);
    expect(Array.isArray(guild.features)).toBe(true);
    expect(Array.isArray(guild.presences)).toBe(true);
    expect(Number.isNaN(Date.parse(guild.joined_at))).toBe(false);
  });

  void it('createGuild: 1000 members, 50 channels and 100 roles that refer to each other consistently', () => {
    const guild = createGuild(12, { id: GUILD_ID, members: 1000, channels: 50, roles: 100 });
    expect(guild.id).toBe(GUILD_ID);
    expect(guild.members).toHaveLength(1000);
    expect(guild.member_count).toBe(1000);
    expect(guild.channels).toHaveLength(50);
    expect(guild.roles).toHaveLength(100);
    expect(guild.large).toBe(true);

    const memberIds = guild.members.map((m) => m.user.id);
    expect(new Set(memberIds).size).toBe(1000);
    expect(guild.owner_id).toBe(memberIds[0]);
    const roleIds = new Set(guild.roles.map((r) => r.id));
    expect(roleIds.size).toBe(100);
    expect(guild.roles[0]).toMatchObject({ id: GUILD_ID, name: '@everyone', position: 0 });
    for (const member of guild.members) for (const role of member.roles) expect(roleIds.has(role)).toBe(true);

    expect(new Set(guild.channels.map((c) => c.id)).size).toBe(50);
    const categories = new Set(guild.channels.filter((c) => c.type === ChannelType.GuildCategory).map((c) => c.id));
    expect(categories.size).toBeGreaterThan(0);
    for (const channel of guild.channels) {
      if ('parent_id' in channel && channel.parent_id) expect(categories.has(channel.parent_id)).toBe(true);
    }
    expect(guild.channels.some((c) => c.type === ChannelType.GuildText)).toBe(true);
    expect(guild.channels.some((c) => c.type === ChannelType.GuildVoice)).toBe(true);

    const members = new Set(memberIds);
    expect(guild.presences.length).toBeGreaterThan(0);
    expect(guild.presences.length).toBeLessThan(1000);
    for (const presence of guild.presences) {
      expect(members.has(presence.user.id)).toBe(true);
      expect(presence.status).not.toBe(PresenceUpdateStatus.Offline);
    }
  });

  void it('createGuildMembers: the members of a guild are stable, distinct and the same as the guild factory makes', () => {
    const members = createGuildMembers(GUILD_ID, 2500);
    expect(members).toHaveLength(2500);
    expect(new Set(members.map((m) => m.user.id)).size).toBe(2500);
    expect(createGuildMembers(GUILD_ID, 10).map((m) => m.user)).toEqual(members.slice(0, 10).map((m) => m.user));
    expect(createGuildMembers('81384788765712399', 10).map((m) => m.user.id)).not.toEqual(members.slice(0, 10).map((m) => m.user.id));
    expect(createGuild(1, { id: GUILD_ID, members: 10 }).members.map((m) => m.user)).toEqual(members.slice(0, 10).map((m) => m.user));
  });

  void it('event factories carry the guild id and the same user in their member', () => {
    const presence = createPresenceUpdate(21, GUILD_ID);
    expect(presence.guild_id).toBe(GUILD_ID);
    expect(presence.user.id).toBe(createUser(21).id);

    const typing = createTypingStart(21, GUILD_ID);
    expect(typing.guild_id).toBe(GUILD_ID);
    expect(typing.member?.user.id).toBe(typing.user_id);
    expect(Number.isInteger(typing.timestamp)).toBe(true);
    expect(typing.timestamp * 1000).toBeLessThanOrEqual(LATEST_MS);

    const reaction = createReactionAdd(21, GUILD_ID);
    expect(reaction.guild_id).toBe(GUILD_ID);
    expect(reaction.member?.user.id).toBe(reaction.user_id);
    expect(reaction.emoji.name).toEqual(expect.any(String));

    const update = createGuildMemberUpdate(21, GUILD_ID);
    expect(update.guild_id).toBe(GUILD_ID);
    expect(update.user).toEqual(createUser(21));
    expect(update).toHaveProperty('avatar');
    expect(update).toHaveProperty('banner');
  });
});
