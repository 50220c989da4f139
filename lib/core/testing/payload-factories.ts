import {
  ActivityType,
  ChannelType,
  EmbedType,
  GuildDefaultMessageNotifications,
  GuildExplicitContentFilter,
  GuildFeature,
  GuildMemberFlags,
  GuildMFALevel,
  GuildNSFWLevel,
  GuildPremiumTier,
  GuildSystemChannelFlags,
  GuildVerificationLevel,
  Locale,
  MessageType,
  PresenceUpdateStatus,
  ReactionType,
  StickerFormatType,
  StickerType,
  UserFlags,
  type APIAttachment,
  type APIEmbed,
  type APIEmoji,
  type APIGuildCategoryChannel,
  type APIGuildMember,
  type APIGuildMemberNoUser,
  type APIGuildVoiceChannel,
  type APIRole,
  type APISticker,
  type APITextChannel,
  type APIUser,
  type APIUserWithMember,
  type GatewayActivity,
  type GatewayGuildCreateDispatchData,
  type GatewayGuildMemberUpdateDispatchData,
  type GatewayMessageCreateDispatchData,
  type GatewayMessageReactionAddDispatchData,
  type GatewayPresenceUpdateDispatchData,
  type GatewayTypingStartDispatchData,
  type PresenceUpdateReceiveStatus,
} from 'discord-api-types/v10';
import { mixSeed, SeededRandom } from './seeded-random';

/**
 * Deterministic factories of Discord gateway dispatch data (discord-api-types v10), for tests, demos and benchmarks.
 * The same seed always gives the same object; nothing depends on the clock. Snowflakes carry real timestamps
 * (milliseconds since the Discord epoch shifted left by 22 bits) and timestamps use Discord's ISO 8601 form.
 */

/** Discord's epoch, 2015-01-01T00:00:00Z, ms. */
const DISCORD_EPOCH = 1_420_070_400_000n;
/** The "now" of generated data, so that output never depends on the clock: 2025-06-01T00:00:00Z. */
const REFERENCE_MS = Date.UTC(2025, 5, 1);
const DAY_MS = 86_400_000;
/** `flags: 0` as Discord sends it; typed `number` because a bare `0` is not assignable to discord-api-types' flag enums. */
const NO_FLAGS: number = 0;

const SALT = {
  user: 1,
  member: 2,
  message: 3,
  guild: 4,
  presence: 5,
  typing: 6,
  reaction: 7,
  memberUpdate: 8,
  author: 9,
  mention: 10,
} as const;

const ADJECTIVES = [
  'silent', 'crimson', 'lucky', 'frozen', 'cosmic', 'sleepy', 'brave', 'quiet', 'neon', 'golden',
  'rusty', 'tiny', 'wild', 'lazy', 'happy', 'dark', 'swift', 'misty', 'clever', 'odd',
];
const NOUNS = [
  'fox', 'panda', 'otter', 'raven', 'comet', 'pixel', 'falcon', 'tiger', 'wolf', 'maple',
  'cactus', 'nebula', 'koala', 'lynx', 'badger', 'penguin', 'river', 'ember', 'storm', 'shadow',
];
const WORDS = [
  'anyone', 'tried', 'the', 'new', 'build', 'yet', 'it', 'crashes', 'when', 'I', 'open', 'settings', 'lol',
  'patch', 'notes', 'are', 'up', 'tonight', 'raid', 'at', 'nine', 'who', 'is', 'in', 'thanks', 'for', 'help',
  'just', 'pushed', 'a', 'fix', 'check', 'this', 'out', 'looks', 'great', 'server', 'event', 'starts', 'soon',
];
const CHANNEL_NAMES = ['general', 'announcements', 'off-topic', 'memes', 'help', 'dev-chat', 'music', 'gaming', 'art', 'bot-commands'];
const VOICE_NAMES = ['General', 'Gaming', 'Music', 'Lounge', 'Study Room'];
const CATEGORY_NAMES = ['Text Channels', 'Voice Channels', 'Community', 'Information', 'Projects'];
const ROLE_NAMES = ['Admin', 'Moderator', 'Member', 'Helper', 'VIP', 'Server Booster', 'Muted', 'Bots', 'Events', 'Artist', 'Developer'];
const GAMES = ['Minecraft', 'Valorant', 'League of Legends', 'Rocket League', 'Stardew Valley', 'Factorio', 'Elden Ring'];
const REACTION_EMOJIS = ['👍', '❤️', '😂', '🎉', '🔥', '👀', '✅', '😭'];
const FEATURES = [
  GuildFeature.Community,
  GuildFeature.News,
  GuildFeature.InviteSplash,
  GuildFeature.AnimatedIcon,
  GuildFeature.Banner,
  GuildFeature.AutoModeration,
  GuildFeature.Discoverable,
  GuildFeature.MemberVerificationGateEnabled,
  GuildFeature.PreviewEnabled,
  GuildFeature.WelcomeScreenEnabled,
];
const PUBLIC_FLAGS = [
  0, 0, 0, 0, 0,
  UserFlags.HypeSquadOnlineHouse1,
  UserFlags.HypeSquadOnlineHouse2,
  UserFlags.HypeSquadOnlineHouse3,
  UserFlags.ActiveDeveloper,
  UserFlags.PremiumEarlySupporter | UserFlags.HypeSquadOnlineHouse2,
];

// ---- small helpers ------------------------------------------------------------------------------

/** A snowflake for time `ms`, with `low` in its worker, process and increment bits (22 bits). */
function snowflake(ms: number, low: number): string {
  return ((BigInt(Math.trunc(ms)) - DISCORD_EPOCH) << 22n | BigInt(low & 0x3f_ffff)).toString();
}

/** A snowflake of a random time in `[fromMs, toMs]` with random worker, process and increment. */
function randomSnowflake(rng: SeededRandom, fromMs: number, toMs: number): string {
  return snowflake(rng.int(fromMs, toMs), rng.int(0, 0x3f_ffff));
}

/** Milliseconds since 1970 encoded in a snowflake. */
function snowflakeMs(id: string): number {
  return Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
}

/** Discord's timestamp form, e.g. `2024-03-01T12:34:56.789000+00:00`. */
function iso(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000+00:00');
}

function capitalize(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

/** A 32-bit FNV-1a hash of a string. */
function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function avatarHash(rng: SeededRandom): string {
  return (rng.chance(0.1) ? 'a_' : '') + rng.hex(32);
}

function sentence(rng: SeededRandom, words: number): string {
  const parts = Array.from({ length: words }, () => rng.pick(WORDS));
  return capitalize(parts.join(' '));
}

/** The member without its `user`, as MESSAGE_CREATE carries it. */
function withoutUser(member: APIGuildMember): APIGuildMemberNoUser {
  const rest: APIGuildMemberNoUser & { user?: APIUser } = { ...member };
  delete rest.user;
  return rest;
}

/** `count` distinct items of `items` (fewer when `items` is shorter). */
function pickDistinct<T>(rng: SeededRandom, items: readonly T[], count: number): T[] {
  const pool = [...items];
  const out: T[] = [];
  while (out.length < count && pool.length > 0) out.push(pool.splice(rng.int(0, pool.length - 1), 1)[0]);
  return out;
}

// ---- users and members --------------------------------------------------------------------------

/**
 * A user. The low 22 bits of its id are the low 22 bits of `seed`, so seeds that differ there (e.g. consecutive
 * seeds) always give different ids.
 */
export function createUser(seed: number): APIUser {
  const rng = new SeededRandom(mixSeed(seed, SALT.user));
  const createdMs = rng.int(Date.UTC(2015, 5, 1), Date.UTC(2024, 11, 31));
  const adjective = rng.pick(ADJECTIVES);
  const noun = rng.pick(NOUNS);
  const number = rng.int(0, 9999);
  const bot = rng.chance(0.04);
  const style = rng.int(0, 3);
  const username = bot
    ? `${noun}bot`
    : style === 0
      ? `${adjective}${noun}`
      : style === 1
        ? `${adjective}_${noun}${number}`
        : style === 2
          ? `${noun}.${adjective}`
          : `${adjective}${noun}${number % 100}`;
  const flags = bot ? UserFlags.VerifiedBot : rng.pick(PUBLIC_FLAGS);
  const user = {
    id: snowflake(createdMs, seed),
    username,
    discriminator: bot ? String(rng.int(1, 9999)).padStart(4, '0') : '0',
    global_name: bot || rng.chance(0.3) ? null : `${capitalize(adjective)} ${capitalize(noun)}`,
    avatar: rng.chance(0.85) ? avatarHash(rng) : null,
    public_flags: flags,
  } satisfies APIUser;
  return bot ? { ...user, bot: true } : user;
}

/** A guild member with its user (from {@link createUser} with the same seed), roles, `joined_at` and flags. */
export function createMember(seed: number, overrides: Partial<APIGuildMember> = {}): APIGuildMember {
  const rng = new SeededRandom(mixSeed(seed, SALT.member));
  const user = createUser(seed);
  const createdMs = snowflakeMs(user.id);
  const joinedMs = rng.int(createdMs, REFERENCE_MS - DAY_MS);
  const roles = Array.from({ length: rng.int(0, 3) }, () => randomSnowflake(rng, Date.UTC(2016, 0, 1), REFERENCE_MS));
  const boosting = rng.chance(0.05);
  const member: APIGuildMember = {
    user,
    nick: rng.chance(0.2) ? `${capitalize(rng.pick(ADJECTIVES))} ${capitalize(rng.pick(NOUNS))}` : null,
    roles,
    joined_at: iso(joinedMs),
    premium_since: boosting ? iso(rng.int(joinedMs, REFERENCE_MS)) : null,
    deaf: false,
    mute: false,
    flags: rng.chance(0.1) ? GuildMemberFlags.DidRejoin | GuildMemberFlags.CompletedOnboarding : 0,
    pending: false,
  };
  return { ...member, ...overrides };
}

/** Seed of the member at `index` of a guild: consecutive per guild, so the members' user ids are distinct. */
export function guildMemberSeed(guildId: string, index: number): number {
  return (hashString(guildId) + index) >>> 0;
}

/**
 * The first `count` members of a guild, in a stable order: member `i` is `createMember(guildMemberSeed(guildId, i))`.
 * With `roleIds`, each member's roles are 0–3 of them instead of random ids.
 */
export function createGuildMembers(guildId: string, count: number, roleIds?: readonly string[]): APIGuildMember[] {
  const rng = new SeededRandom(mixSeed(hashString(guildId), SALT.guild));
  return Array.from({ length: count }, (_, i) => {
    const seed = guildMemberSeed(guildId, i);
    return roleIds ? createMember(seed, { roles: pickDistinct(rng, roleIds, rng.int(0, 3)) }) : createMember(seed);
  });
}

// ---- messages -----------------------------------------------------------------------------------

/** Options of {@link createMessage}. */
export interface CreateMessageOptions {
  /** Guild of the message; `null` for a DM (no `guild_id` or `member`). @defaultValue an id made from the seed */
  guildId?: string | null;
  /** @defaultValue an id made from the seed */
  channelId?: string;
  /** @defaultValue a sentence that mentions each mentioned user */
  content?: string;
  /** Number of rich embeds. @defaultValue `1` */
  embeds?: number;
  /** Number of mentioned users. @defaultValue `2` */
  mentions?: number;
}

function createEmbed(rng: SeededRandom): APIEmbed {
  const image = rng.hex(12);
  return {
    type: EmbedType.Rich,
    title: sentence(rng, rng.int(2, 4)),
    description: `${sentence(rng, rng.int(4, 8))}.`,
    color: rng.int(0, 0xff_ffff),
    fields: Array.from({ length: 2 }, () => ({
      name: capitalize(rng.pick(NOUNS)),
      value: sentence(rng, rng.int(1, 3)),
      inline: rng.chance(0.5),
    })),
    footer: { text: `${capitalize(rng.pick(NOUNS))} bot` },
    thumbnail: {
      url: `https://example.com/i/${image}.png`,
      width: 128,
      height: 128,
    },
  };
}

function createAttachment(rng: SeededRandom, channelId: string, ms: number): APIAttachment {
  const id = snowflake(ms, rng.int(0, 0x3f_ffff));
  const filename = rng.chance(0.6) ? 'image.png' : `IMG_${rng.int(1000, 9999)}.png`;
  const path = `attachments/${channelId}/${id}/${filename}`;
  return {
    id,
    filename,
    size: rng.int(20_000, 2_000_000),
    url: `https://cdn.discordapp.com/${path}`,
    proxy_url: `https://media.discordapp.net/${path}`,
    width: rng.pick([640, 800, 1280, 1920]),
    height: rng.pick([480, 600, 720, 1080]),
    content_type: 'image/png',
  };
}

/**
 * A MESSAGE_CREATE from a guild text channel (or a DM with `guildId: null`): author and member, embeds with title,
 * description, fields, footer and thumbnail, mentioned users (mentioned in `content` too, without their `member`
 * field, to keep the size typical) and one image attachment. About 1.5–1.7 KB of JSON with the defaults.
 */
export function createMessage(seed: number, options: CreateMessageOptions = {}): GatewayMessageCreateDispatchData {
  const rng = new SeededRandom(mixSeed(seed, SALT.message));
  const guildId = options.guildId === undefined ? randomSnowflake(rng, Date.UTC(2016, 0, 1), Date.UTC(2023, 0, 1)) : options.guildId;
  const channelId = options.channelId ?? randomSnowflake(rng, Date.UTC(2016, 0, 1), Date.UTC(2024, 0, 1));
  const ms = rng.int(REFERENCE_MS - 30 * DAY_MS, REFERENCE_MS);
  const author = createMember(mixSeed(seed, SALT.author));
  const mentions: APIUserWithMember[] = Array.from({ length: options.mentions ?? 2 }, (_, i) => createUser(mixSeed(seed, SALT.mention + i * 31)));
  const content =
    options.content ?? `${mentions.map((u) => `<@${u.id}> `).join('')}${sentence(rng, rng.int(2, 5))}`;
  const message: GatewayMessageCreateDispatchData = {
    id: snowflake(ms, rng.int(0, 0x3f_ffff)),
    channel_id: channelId,
    type: MessageType.Default,
    content,
    author: author.user,
    mentions,
    mention_roles: [],
    mention_everyone: false,
    attachments: [createAttachment(rng, channelId, ms)],
    embeds: Array.from({ length: options.embeds ?? 1 }, () => createEmbed(rng)),
    timestamp: iso(ms),
    edited_timestamp: null,
    tts: false,
    pinned: false,
    flags: NO_FLAGS,
    channel_type: guildId === null ? ChannelType.DM : ChannelType.GuildText,
  };
  return guildId === null ? message : { ...message, guild_id: guildId, member: withoutUser(author) };
}

// ---- guilds -------------------------------------------------------------------------------------

/** Options of {@link createGuild}. */
export interface CreateGuildOptions {
  /** @defaultValue an id made from the seed */
  id?: string;
  /** Number of members (and `member_count`). @defaultValue `10` */
  members?: number;
  /** Number of channels: categories, text and voice channels. @defaultValue `5` */
  channels?: number;
  /** Number of roles, `@everyone` included (at least 1). @defaultValue `5` */
  roles?: number;
}

function createRoles(rng: SeededRandom, guildId: string, count: number, createdMs: number): APIRole[] {
  const everyone: APIRole = {
    id: guildId,
    name: '@everyone',
    color: 0,
    colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
    hoist: false,
    icon: null,
    unicode_emoji: null,
    position: 0,
    permissions: '2248473465835073',
    managed: false,
    mentionable: false,
    flags: NO_FLAGS,
  };
  const roles = [everyone];
  for (let i = 1; i < Math.max(1, count); i++) {
    const base = ROLE_NAMES[(i - 1) % ROLE_NAMES.length];
    const cycle = Math.floor((i - 1) / ROLE_NAMES.length);
    const color = rng.chance(0.7) ? rng.int(1, 0xff_ffff) : 0;
    roles.push({
      id: randomSnowflake(rng, createdMs, REFERENCE_MS),
      name: cycle === 0 ? base : `${base} ${cycle + 1}`,
      color,
      colors: { primary_color: color, secondary_color: null, tertiary_color: null },
      hoist: rng.chance(0.3),
      icon: null,
      unicode_emoji: null,
      position: count - i,
      permissions: base === 'Admin' ? '8' : (BigInt(rng.int(0, 0x7fff_ffff)) << BigInt(rng.int(0, 20))).toString(),
      managed: false,
      mentionable: rng.chance(0.4),
      flags: NO_FLAGS,
    });
  }
  return roles;
}

function createChannels(rng: SeededRandom, count: number, createdMs: number): GatewayGuildCreateDispatchData['channels'] {
  const channels: GatewayGuildCreateDispatchData['channels'] = [];
  let parentId: string | null = null;
  const positions = { category: 0, text: 0, voice: 0 };
  for (let i = 0; i < count; i++) {
    const id = randomSnowflake(rng, createdMs, REFERENCE_MS);
    const slot = i % 5;
    const cycle = Math.floor(i / 5);
    if (slot === 0) {
      const category: APIGuildCategoryChannel = {
        id,
        type: ChannelType.GuildCategory,
        name: CATEGORY_NAMES[cycle % CATEGORY_NAMES.length] + (cycle >= CATEGORY_NAMES.length ? ` ${cycle + 1}` : ''),
        position: positions.category++,
        permission_overwrites: [],
        nsfw: false,
        flags: NO_FLAGS,
      };
      channels.push(category);
      parentId = id;
    } else if (slot === 4) {
      const voice: APIGuildVoiceChannel = {
        id,
        type: ChannelType.GuildVoice,
        name: VOICE_NAMES[cycle % VOICE_NAMES.length] + (cycle >= VOICE_NAMES.length ? ` ${cycle + 1}` : ''),
        position: positions.voice++,
        parent_id: parentId,
        permission_overwrites: [],
        nsfw: false,
        bitrate: rng.pick([64_000, 96_000]),
        user_limit: rng.pick([0, 0, 5, 10]),
        rtc_region: null,
        rate_limit_per_user: 0,
        last_message_id: null,
        flags: NO_FLAGS,
      };
      channels.push(voice);
    } else {
      const index = cycle * 3 + slot - 1;
      const text: APITextChannel = {
        id,
        type: ChannelType.GuildText,
        name: CHANNEL_NAMES[index % CHANNEL_NAMES.length] + (index >= CHANNEL_NAMES.length ? `-${Math.floor(index / CHANNEL_NAMES.length) + 1}` : ''),
        position: positions.text++,
        parent_id: parentId,
        permission_overwrites: [],
        topic: rng.chance(0.5) ? sentence(rng, rng.int(3, 8)) : null,
        nsfw: false,
        rate_limit_per_user: rng.pick([0, 0, 0, 5, 30]),
        last_message_id: rng.chance(0.8) ? randomSnowflake(rng, REFERENCE_MS - 30 * DAY_MS, REFERENCE_MS) : null,
        flags: NO_FLAGS,
      };
      channels.push(text);
    }
  }
  return channels;
}

/**
 * A GUILD_CREATE: roles (`@everyone` first, with the guild's id), categories with text and voice channels under them,
 * members whose roles are the guild's, presences of the members who are not offline, emojis, stickers and features.
 */
export function createGuild(seed: number, options: CreateGuildOptions = {}): GatewayGuildCreateDispatchData {
  const rng = new SeededRandom(mixSeed(seed, SALT.guild));
  const fallbackMs = rng.int(Date.UTC(2016, 0, 1), Date.UTC(2023, 0, 1));
  const id = options.id ?? snowflake(fallbackMs, rng.int(0, 0x3f_ffff));
  const createdMs = options.id === undefined ? fallbackMs : snowflakeMs(options.id);
  const roles = createRoles(rng, id, options.roles ?? 5, createdMs);
  const channels = createChannels(rng, options.channels ?? 5, createdMs);
  const members = createGuildMembers(id, options.members ?? 10, roles.slice(1).map((r) => r.id));
  const presences = members
    .map((m, i) => createPresenceUpdate(guildMemberSeed(id, i), id))
    .filter((p) => p.status !== PresenceUpdateStatus.Offline);
  const emojis: APIEmoji[] = Array.from({ length: rng.int(2, 6) }, (_, i) => ({
    id: randomSnowflake(rng, createdMs, REFERENCE_MS),
    name: `${rng.pick(ADJECTIVES)}_${rng.pick(NOUNS)}${i}`,
    roles: [],
    require_colons: true,
    managed: false,
    animated: rng.chance(0.2),
    available: true,
  }));
  const stickers: APISticker[] = Array.from({ length: rng.int(0, 2) }, () => ({
    id: randomSnowflake(rng, createdMs, REFERENCE_MS),
    name: `${capitalize(rng.pick(ADJECTIVES))} ${capitalize(rng.pick(NOUNS))}`,
    description: sentence(rng, 4),
    tags: rng.pick(['smile', 'wave', 'thumbsup', 'tada']),
    type: StickerType.Guild,
    format_type: StickerFormatType.PNG,
    available: true,
    guild_id: id,
  }));
  const boosts = rng.pick([0, 0, 2, 7, 14, 30]);
  const firstText = channels.find((c) => c.type === ChannelType.GuildText);
  return {
    id,
    name: `${capitalize(rng.pick(ADJECTIVES))} ${capitalize(rng.pick(NOUNS))}s`,
    icon: rng.chance(0.8) ? avatarHash(rng) : null,
    splash: null,
    discovery_splash: null,
    banner: null,
    description: null,
    owner_id: members[0]?.user.id ?? randomSnowflake(rng, Date.UTC(2015, 5, 1), createdMs),
    afk_channel_id: null,
    afk_timeout: 300,
    widget_enabled: false,
    widget_channel_id: null,
    verification_level: GuildVerificationLevel.Low,
    default_message_notifications: GuildDefaultMessageNotifications.OnlyMentions,
    explicit_content_filter: GuildExplicitContentFilter.AllMembers,
    roles,
    emojis,
    stickers,
    features: pickDistinct(rng, FEATURES, rng.int(0, 5)),
    mfa_level: GuildMFALevel.None,
    application_id: null,
    system_channel_id: firstText?.id ?? null,
    system_channel_flags: GuildSystemChannelFlags.SuppressJoinNotificationReplies,
    rules_channel_id: null,
    max_members: 500_000,
    max_video_channel_users: 25,
    max_stage_video_channel_users: 50,
    vanity_url_code: null,
    premium_tier: boosts >= 14 ? GuildPremiumTier.Tier2 : boosts >= 2 ? GuildPremiumTier.Tier1 : GuildPremiumTier.None,
    premium_subscription_count: boosts,
    preferred_locale: Locale.EnglishUS,
    public_updates_channel_id: null,
    nsfw_level: GuildNSFWLevel.Default,
    premium_progress_bar_enabled: false,
    hub_type: null,
    safety_alerts_channel_id: null,
    incidents_data: null,
    joined_at: iso(rng.int(createdMs, REFERENCE_MS - DAY_MS)),
    large: members.length > 250,
    unavailable: false,
    member_count: members.length,
    voice_states: [],
    members,
    channels,
    threads: [],
    presences,
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
  };
}

// ---- other dispatches ---------------------------------------------------------------------------

function createActivity(rng: SeededRandom): GatewayActivity {
  const startedMs = REFERENCE_MS - rng.int(60_000, 4 * 3_600_000);
  const kind = rng.int(0, 2);
  if (kind === 0) {
    return { id: rng.hex(16), name: rng.pick(GAMES), type: ActivityType.Playing, created_at: startedMs, timestamps: { start: startedMs } };
  }
  if (kind === 1) {
    return {
      id: 'spotify:1',
      name: 'Spotify',
      type: ActivityType.Listening,
      created_at: startedMs,
      details: sentence(rng, 3),
      state: `${capitalize(rng.pick(ADJECTIVES))} ${capitalize(rng.pick(NOUNS))}`,
      timestamps: { start: startedMs, end: startedMs + rng.int(120_000, 300_000) },
    };
  }
  return { id: 'custom', name: 'Custom Status', type: ActivityType.Custom, created_at: startedMs, state: sentence(rng, rng.int(2, 5)) };
}

/** A PRESENCE_UPDATE of the user of {@link createUser} with the same seed: status, activities and client status. */
export function createPresenceUpdate(seed: number, guildId: string): GatewayPresenceUpdateDispatchData {
  const rng = new SeededRandom(mixSeed(seed, SALT.presence));
  const roll = rng.float();
  const status: PresenceUpdateReceiveStatus =
    roll < 0.45
      ? PresenceUpdateStatus.Online
      : roll < 0.65
        ? PresenceUpdateStatus.Idle
        : roll < 0.8
          ? PresenceUpdateStatus.DoNotDisturb
          : PresenceUpdateStatus.Offline;
  const user = { id: createUser(seed).id };
  if (status === PresenceUpdateStatus.Offline) {
    return { user, guild_id: guildId, status, activities: [], client_status: {} };
  }
  const activities = Array.from({ length: rng.int(0, 2) }, () => createActivity(rng));
  const client = rng.pick(['desktop', 'mobile', 'web'] as const);
  return { user, guild_id: guildId, status, activities, client_status: { [client]: status } };
}

/** A TYPING_START of the member of {@link createMember} with the same seed. */
export function createTypingStart(seed: number, guildId: string): GatewayTypingStartDispatchData {
  const rng = new SeededRandom(mixSeed(seed, SALT.typing));
  const member = createMember(seed);
  return {
    channel_id: randomSnowflake(rng, Date.UTC(2016, 0, 1), Date.UTC(2024, 0, 1)),
    guild_id: guildId,
    user_id: member.user.id,
    timestamp: Math.floor((REFERENCE_MS - rng.int(0, DAY_MS)) / 1000),
    member,
  };
}

/** A MESSAGE_REACTION_ADD by the member of {@link createMember} with the same seed, with a unicode or custom emoji. */
export function createReactionAdd(seed: number, guildId: string): GatewayMessageReactionAddDispatchData {
  const rng = new SeededRandom(mixSeed(seed, SALT.reaction));
  const member = createMember(seed);
  const messageMs = rng.int(REFERENCE_MS - 7 * DAY_MS, REFERENCE_MS);
  const emoji: APIEmoji = rng.chance(0.7)
    ? { id: null, name: rng.pick(REACTION_EMOJIS) }
    : { id: randomSnowflake(rng, Date.UTC(2017, 0, 1), REFERENCE_MS), name: `${rng.pick(ADJECTIVES)}_${rng.pick(NOUNS)}`, animated: rng.chance(0.2) };
  return {
    user_id: member.user.id,
    channel_id: randomSnowflake(rng, Date.UTC(2016, 0, 1), Date.UTC(2024, 0, 1)),
    message_id: snowflake(messageMs, rng.int(0, 0x3f_ffff)),
    guild_id: guildId,
    emoji,
    burst: false,
    burst_colors: [],
    type: ReactionType.Normal,
    member,
    message_author_id: createUser(mixSeed(seed, SALT.author)).id,
  };
}

/** A GUILD_MEMBER_UPDATE of the member of {@link createMember} with the same seed, with a new nickname or roles. */
export function createGuildMemberUpdate(seed: number, guildId: string): GatewayGuildMemberUpdateDispatchData {
  const rng = new SeededRandom(mixSeed(seed, SALT.memberUpdate));
  const member = createMember(seed);
  const changeNick = rng.chance(0.5);
  return {
    guild_id: guildId,
    user: member.user,
    nick: changeNick ? `${capitalize(rng.pick(ADJECTIVES))} ${capitalize(rng.pick(NOUNS))}` : member.nick,
    roles: changeNick ? member.roles : [...member.roles, randomSnowflake(rng, Date.UTC(2016, 0, 1), REFERENCE_MS)],
    avatar: member.avatar ?? null,
    banner: member.banner ?? null,
    joined_at: member.joined_at,
    premium_since: member.premium_since,
    deaf: member.deaf,
    mute: member.mute,
    pending: false,
    communication_disabled_until: null,
    flags: member.flags,
  };
}
