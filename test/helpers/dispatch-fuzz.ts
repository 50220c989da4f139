import { GatewayDispatchEvents, GatewayOpcodes } from 'discord-api-types/v10';
import { createGuild, createMember, createMessage, createPresenceUpdate, createReactionAdd, createTypingStart, createUser } from '../../lib/nest/testing';
import type { SeededRandom } from '../../lib/core/testing/seeded-random';

/** Every dispatch event name discord-api-types defines, read from its enum at run time. */
export function dispatchEventNames(): string[] {
  return Object.values(GatewayDispatchEvents);
}

/**
 * A well-formed-looking base for event `t`: the testing factories' payloads where they exist, the shapes the
 * library reads (guild bookkeeping, request replies) for those, and otherwise the fields most events carry.
 */
export function baseData(t: string, guildId: string, seed: number): Record<string, unknown> {
  switch (t) {
    case 'GUILD_CREATE':
      return { ...createGuild(seed, { id: guildId, members: 2 }) };
    case 'GUILD_DELETE':
      return { id: guildId, unavailable: true };
    case 'MESSAGE_CREATE':
    case 'MESSAGE_UPDATE':
      return { ...createMessage(seed, { guildId }) };
    case 'PRESENCE_UPDATE':
      return { ...createPresenceUpdate(seed, guildId) };
    case 'TYPING_START':
      return { ...createTypingStart(seed, guildId) };
    case 'MESSAGE_REACTION_ADD':
      return { ...createReactionAdd(seed, guildId) };
    case 'GUILD_MEMBERS_CHUNK':
      return { guild_id: guildId, members: [createMember(seed), createMember(seed + 1)], chunk_index: 0, chunk_count: 1 };
    case 'RATE_LIMITED':
      return { opcode: GatewayOpcodes.RequestGuildMembers, retry_after: 1.5, meta: { guild_id: guildId } };
    case 'SOUNDBOARD_SOUNDS':
      return { guild_id: guildId, soundboard_sounds: [] };
    default:
      return {
        id: String(1_000_000_000_000_000n + BigInt(seed)),
        guild_id: guildId,
        channel_id: '155101607195836416',
        user: createUser(seed),
        member: createMember(seed),
        roles: ['155101607195836417'],
        members: [],
        emoji: { id: null, name: '👍' },
      };
  }
}

/** What a mutation did, for failure messages. */
export interface Mutation {
  kind: 'null d' | 'wrong type d' | 'missing field' | 'wrong type field' | 'null field' | 'huge array' | 'nested wrong type';
  field?: string;
  d: unknown;
}

const WRONG_VALUES: unknown[] = [null, 5, -1, 1e308, 'text', '', true, false, {}, [], [null], [5], [{}], { id: 5 }];

function typeOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

function wrongValue(rng: SeededRandom, current: unknown): unknown {
  const candidates = WRONG_VALUES.filter((v) => typeOf(v) !== typeOf(current));
  return structuredClone(rng.pick(candidates));
}

/** An array of `length` entries of one seeded kind (numbers, nulls or empty objects). */
export function hugeArray(rng: SeededRandom, length: number): unknown[] {
  const entry = rng.pick([0, null, {}] as const);
  return Array.from({ length }, () => (entry !== null && typeof entry === 'object' ? {} : entry));
}

/**
 * One seeded mutation of `base`: null or wrongly typed data, a missing, null or wrongly typed field (at the top or
 * one level down), or a huge array in place of a field. `hugeLength` sizes the huge arrays.
 */
export function mutate(rng: SeededRandom, base: Record<string, unknown>, kind: Mutation['kind'], hugeLength: number): Mutation {
  const keys = Object.keys(base);
  const d = structuredClone(base);
  const field = keys.length > 0 ? rng.pick(keys) : undefined;
  switch (kind) {
    case 'null d':
      return { kind, d: null };
    case 'wrong type d':
      return { kind, d: wrongValue(rng, base) };
    case 'missing field':
      if (field) delete d[field];
      return { kind, field, d };
    case 'null field':
      if (field) d[field] = null;
      return { kind, field, d };
    case 'wrong type field':
      if (field) d[field] = wrongValue(rng, d[field]);
      return { kind, field, d };
    case 'huge array': {
      const arrays = keys.filter((k) => Array.isArray(base[k]));
      const target = arrays.length > 0 ? rng.pick(arrays) : field;
      if (target) d[target] = hugeArray(rng, hugeLength);
      return { kind, field: target, d };
    }
    case 'nested wrong type': {
      const nested = keys.filter((k) => typeOf(base[k]) === 'object' && Object.keys(base[k] as object).length > 0);
      if (nested.length === 0) return mutate(rng, base, 'wrong type field', hugeLength);
      const outer = rng.pick(nested);
      const inner = d[outer] as Record<string, unknown>;
      const key = rng.pick(Object.keys(inner));
      inner[key] = wrongValue(rng, inner[key]);
      return { kind, field: `${outer}.${key}`, d };
    }
  }
}

/** Every mutation kind; `null d` first, so that each event gets at least that one. */
export const MUTATION_KINDS: Mutation['kind'][] = [
  'null d',
  'wrong type d',
  'missing field',
  'null field',
  'wrong type field',
  'nested wrong type',
  'huge array',
];
