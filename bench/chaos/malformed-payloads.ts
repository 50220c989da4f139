import { GatewayDispatchEvents } from 'discord-api-types/v10';
import type { SeededRandom } from '../../lib/core/testing/seeded-random';

/** One malformed dispatch: an event name discord-api-types defines and a `d` that does not have its shape. */
export interface MalformedDispatch {
  t: string;
  d: unknown;
  /** What is wrong with it, for the log. */
  shape: string;
}

/**
 * Every dispatch event name discord-api-types defines, except READY (a READY starts a session: see
 * {@link MALFORMED_READY_GUILDS}) and RESUMED (whose `d` is null anyway).
 */
const DISPATCH_EVENTS = Object.values(GatewayDispatchEvents).filter(
  (t): t is GatewayDispatchEvents => t !== GatewayDispatchEvents.Ready && t !== GatewayDispatchEvents.Resumed,
);

/** `guilds` lists of malformed READYs: entries that are not unavailable-guild objects. */
export const MALFORMED_READY_GUILDS: readonly unknown[][] = [[null], [5], [{}], ['x', null, { id: 7 }]];

/** Events the chaos app decodes (its handler's, and the ones the library always reads): picked half of the time. */
const DECODED_EVENTS = [
  GatewayDispatchEvents.MessageCreate,
  GatewayDispatchEvents.GuildCreate,
  GatewayDispatchEvents.GuildDelete,
  GatewayDispatchEvents.GuildMembersChunk,
  GatewayDispatchEvents.SoundboardSounds,
  GatewayDispatchEvents.RateLimited,
];

/** Array length of the "huge array" shapes (500,000 entries overflow a spread into `push`). */
export const HUGE_ARRAY_LENGTH = 500_000;

/** Array fields the library or its users read from dispatches. */
const ARRAY_FIELDS = ['members', 'guilds', 'soundboard_sounds', 'channels', 'roles', 'user_ids', 'not_found', 'emojis'];

/**
 * A malformed dispatch for the chaos run, of an event that may come at any time in a session: `null` d, a d of the
 * wrong type, an object with every field missing, array fields that are not arrays, huge arrays, fields of the
 * wrong types. Half of the time the event is one the chaos app decodes.
 */
export function createMalformedDispatch(random: SeededRandom): MalformedDispatch {
  const kind = random.int(1, 6);
  const t: string = random.chance(0.5) ? random.pick(DECODED_EVENTS) : random.pick(DISPATCH_EVENTS);
  switch (kind) {
    case 1:
      return { t, d: null, shape: `${t} d null` };
    case 2: {
      const d = random.pick<unknown>([5, 'x', true, [], [null]]);
      return { t, d, shape: `${t} d ${JSON.stringify(d)}` };
    }
    case 3:
      return { t, d: {}, shape: `${t} d {} (every field missing)` };
    case 4: {
      const field = random.pick(ARRAY_FIELDS);
      const value = random.pick<unknown>([null, 'x', 5, { length: 3 }]);
      return { t, d: { guild_id: '1', id: '1', [field]: value, nonce: 'chaos' }, shape: `${t} ${field} ${JSON.stringify(value)}` };
    }
    case 5: {
      const field = random.pick(ARRAY_FIELDS);
      return {
        t,
        d: { guild_id: '1', id: '1', [field]: new Array<number>(HUGE_ARRAY_LENGTH).fill(0), chunk_index: 0, chunk_count: 1, nonce: 'chaos' },
        shape: `${t} ${field} with ${HUGE_ARRAY_LENGTH} entries`,
      };
    }
    default: {
      const d = { id: 5, guild_id: null, channel_id: [], author: 'x', unavailable: 'yes', user: null };
      return { t, d, shape: `${t} fields of the wrong types` };
    }
  }
}
