import { GatewayOptionsError } from '../errors/gateway-options.error';
import type { ShardScheme } from '../interfaces/cluster-options.interface';

/** The shards one process runs. */
export interface ResolvedShardScheme {
  /** Shard count of the whole bot. */
  total: number;
  /** Shard ids run here, ascending. */
  ids: number[];
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1;
}

/**
 * Checks a scheme's shape without needing `GET /gateway/bot`. Throws {@link GatewayOptionsError} naming the field.
 */
export function validateShardScheme(scheme: unknown): void {
  if (scheme === undefined || scheme === 'auto') return;
  if (typeof scheme !== 'object' || scheme === null) {
    throw new GatewayOptionsError('shards', `must be 'auto', { total, ids }, { total, from, to } or { total, ownership: 'redis' }`);
  }
  const s = scheme as { total?: unknown; ids?: unknown; from?: unknown; to?: unknown; ownership?: unknown };
  if (!isCount(s.total)) throw new GatewayOptionsError('shards.total', 'must be an integer >= 1');
  const total = s.total;
  if ('ownership' in s) {
    if (s.ownership !== 'redis') throw new GatewayOptionsError('shards.ownership', `must be 'redis', got ${JSON.stringify(s.ownership)}`);
    if ('ids' in s || 'from' in s || 'to' in s) {
      throw new GatewayOptionsError('shards.ownership', 'takes no ids or from/to: the processes divide the shards among themselves');
    }
    return;
  }
  if ('ids' in s) {
    if (!Array.isArray(s.ids) || s.ids.length === 0) throw new GatewayOptionsError('shards.ids', 'must be a non-empty array');
    const seen = new Set<number>();
    for (const id of s.ids) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= total) {
        throw new GatewayOptionsError('shards.ids', `every id must be an integer from 0 to ${total - 1}, got ${typeof id === 'number' ? id : typeof id}`);
      }
      if (seen.has(id)) throw new GatewayOptionsError('shards.ids', `shard ${id} is listed twice`);
      seen.add(id);
    }
    return;
  }
  if ('from' in s || 'to' in s) {
    const { from, to } = s;
    if (typeof from !== 'number' || !Number.isInteger(from) || from < 0 || from >= total) {
      throw new GatewayOptionsError('shards.from', `must be an integer from 0 to ${total - 1}`);
    }
    if (typeof to !== 'number' || !Number.isInteger(to) || to < from || to >= total) {
      throw new GatewayOptionsError('shards.to', `must be an integer from shards.from (${from}) to ${total - 1}`);
    }
    return;
  }
  throw new GatewayOptionsError('shards', 'needs ids or from/to beside total');
}

/**
 * Turns a scheme into a shard count and the ids run here. `recommended` is the `shards` of `GET /gateway/bot`,
 * needed only for `'auto'`.
 */
export function resolveShardScheme(scheme: ShardScheme | undefined, recommended?: number): ResolvedShardScheme {
  validateShardScheme(scheme);
  if (scheme === undefined || scheme === 'auto') {
    if (!isCount(recommended)) throw new GatewayOptionsError('shards', `'auto' needs the shard count from GET /gateway/bot`);
    return { total: recommended, ids: Array.from({ length: recommended }, (_, i) => i) };
  }
  if ('ownership' in scheme) return { total: scheme.total, ids: [] };
  if ('ids' in scheme) return { total: scheme.total, ids: [...scheme.ids].sort((a, b) => a - b) };
  return { total: scheme.total, ids: Array.from({ length: scheme.to - scheme.from + 1 }, (_, i) => scheme.from + i) };
}

/** The shard that receives a guild's events: `(guild_id >> 22) % total`. */
export function shardIdForGuild(guildId: string | bigint, total: number): number {
  let id: bigint;
  try {
    id = BigInt(guildId);
  } catch {
    throw new GatewayOptionsError('guildId', `must be a snowflake, got ${JSON.stringify(String(guildId))}`);
  }
  if (id < 0n) throw new GatewayOptionsError('guildId', 'must be a snowflake');
  return Number((id >> 22n) % BigInt(total));
}
