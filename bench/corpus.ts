import {
  createGuild,
  createMessage,
  createPresenceUpdate,
  createReactionAdd,
  createTypingStart,
} from '../lib/core/testing/payload-factories';
import { mixSeed, mulberry32 } from '../lib/core/testing/seeded-random';

/**
 * The seeded event streams of the benchmark. The same scenario, event count and shard count always give the
 * same bytes. Events are dealt round-robin to the shards (event `j` goes to shard `j % shards`); on each shard,
 * READY is sequence 1 and the shard's events follow as 2, 3, ... so the last one is `events + 1`.
 */

/** Scenarios the load server can stream. */
export type ScenarioName = 'messages' | 'mixed' | 'guilds' | 'idle';

/** One stream of the corpus. */
export interface CorpusSpec {
  scenario: ScenarioName;
  /** Events over all shards (0 for `idle`). */
  events: number;
  shards: number;
}

/** One dispatch of the corpus, before it is numbered. */
export interface CorpusEvent {
  t: string;
  d: unknown;
}

/** What a client must know to tell when a shard's stream is complete. */
export interface ShardPlan {
  /** Events of this shard (READY not included). */
  events: number;
  /** Sequence of the shard's last event (READY's when it has none). */
  lastSequence: number;
  /** The last event's name, or null when the shard has none. */
  lastEvent: string | null;
}

/** Default event counts: 150,000 messages or mixed events, 300 guilds. */
export const DEFAULT_EVENTS: Record<ScenarioName, number> = { messages: 150_000, mixed: 150_000, guilds: 300, idle: 0 };

/** GUILD_CREATE size of the `guilds` scenario (about 600 KB of JSON each). */
export const GUILD_SHAPE = { members: 1000, channels: 50, roles: 100 } as const;

/** Mix of the `mixed` scenario, as cumulative thresholds. */
const MIX: readonly { t: string; upTo: number }[] = [
  { t: 'PRESENCE_UPDATE', upTo: 0.4 },
  { t: 'TYPING_START', upTo: 0.65 },
  { t: 'MESSAGE_REACTION_ADD', upTo: 0.8 },
  { t: 'MESSAGE_CREATE', upTo: 1 },
];

/** Guilds the generated events belong to (fixed snowflakes, so streams are reproducible). */
const GUILD_IDS = Array.from({ length: 50 }, (_, i) => snowflakeAt(1_600_000_000_000 + i * 86_400_000, i));

/** A snowflake whose timestamp is `ms` (Unix ms) and whose low bits are `low`. */
function snowflakeAt(ms: number, low: number): string {
  return String((BigInt(ms - 1_420_070_400_000) << 22n) | BigInt(low & 0x3f_ffff));
}

/** Events of one shard in a round-robin split of `total` events over `shards`. */
export function shardEventCount(total: number, shards: number, shardId: number): number {
  return total > shardId ? Math.ceil((total - shardId) / shards) : 0;
}

/** Per-shard plan of a spec: event counts, last sequences and last event names. */
export function planOf(spec: CorpusSpec): ShardPlan[] {
  return Array.from({ length: spec.shards }, (_, shardId) => {
    const events = shardEventCount(spec.events, spec.shards, shardId);
    const lastEvent = events === 0 ? null : eventName(spec, spec.events - 1 - ((spec.events - 1 - shardId) % spec.shards), true);
    return { events, lastSequence: events + 1, lastEvent };
  });
}

/**
 * Name of event `index` of the corpus. In `mixed`, each shard's last event is a MESSAGE_CREATE, so that a
 * client that only handles MESSAGE_CREATE sees the end of its stream.
 */
export function eventName(spec: CorpusSpec, index: number, lastOfShard: boolean): string {
  switch (spec.scenario) {
    case 'messages':
      return 'MESSAGE_CREATE';
    case 'guilds':
      return 'GUILD_CREATE';
    case 'idle':
      throw new Error('the idle scenario has no events');
    case 'mixed': {
      if (lastOfShard) return 'MESSAGE_CREATE';
      const roll = mulberry32(mixSeed(index, 0xb3ac4))();
      return MIX.find((entry) => roll < entry.upTo)!.t;
    }
  }
}

/** Event `index` of the corpus (seeded by its index). */
export function createEvent(spec: CorpusSpec, index: number, lastOfShard: boolean): CorpusEvent {
  const t = eventName(spec, index, lastOfShard);
  const seed = index + 1;
  const guildId = GUILD_IDS[index % GUILD_IDS.length];
  switch (t) {
    case 'MESSAGE_CREATE':
      return { t, d: createMessage(seed, { guildId }) };
    case 'PRESENCE_UPDATE':
      return { t, d: createPresenceUpdate(seed, guildId) };
    case 'TYPING_START':
      return { t, d: createTypingStart(seed, guildId) };
    case 'MESSAGE_REACTION_ADD':
      return { t, d: createReactionAdd(seed, guildId) };
    case 'GUILD_CREATE':
      return { t, d: createGuild(seed, { ...GUILD_SHAPE, id: snowflakeAt(1_500_000_000_000 + index * 3_600_000, index) }) };
    default:
      throw new Error(`no factory for ${t}`);
  }
}

/**
 * One shard's events, numbered from sequence 2, in order: each one's name and JSON text. The keys come in the
 * order `op`, `t`, `s`, `d`, so every text starts with `{"op":0,"t":"<name>","s":<sequence>,"d":`.
 */
export function* shardEventTexts(spec: CorpusSpec, shardId: number): Generator<{ t: string; text: string }> {
  const count = shardEventCount(spec.events, spec.shards, shardId);
  for (let k = 0; k < count; k++) {
    const index = shardId + k * spec.shards;
    const { t, d } = createEvent(spec, index, k === count - 1);
    yield { t, text: JSON.stringify({ op: 0, t, s: k + 2, d }) };
  }
}
