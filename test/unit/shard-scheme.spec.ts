import { describe, it } from 'node:test';
import { expect } from 'expect';
import { Cluster } from '../../lib/core/cluster/cluster';
import { resolveShardScheme, shardIdForGuild, validateShardScheme } from '../../lib/core/cluster/resolve-shard-scheme';
import { GatewayOptionsError } from '../../lib/core/errors/gateway-options.error';

/** The error a call throws, or a failure when it does not throw. */
function errorOf(call: () => unknown): GatewayOptionsError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(GatewayOptionsError);
    return error as GatewayOptionsError;
  }
  throw new Error('expected the call to throw');
}

void describe('resolveShardScheme', () => {
  void it("'auto' runs every shard of the recommended count", () => {
    expect(resolveShardScheme('auto', 3)).toEqual({ total: 3, ids: [0, 1, 2] });
    expect(resolveShardScheme(undefined, 2)).toEqual({ total: 2, ids: [0, 1] });
  });

  void it("'auto' without a recommended count is refused", () => {
    expect(errorOf(() => resolveShardScheme('auto')).option).toBe('shards');
    expect(errorOf(() => resolveShardScheme('auto', 0)).option).toBe('shards');
  });

  void it('{ total, ids } keeps the total and sorts the ids ascending', () => {
    expect(resolveShardScheme({ total: 8, ids: [5, 1, 7, 0] })).toEqual({ total: 8, ids: [0, 1, 5, 7] });
    expect(resolveShardScheme({ total: 1, ids: [0] })).toEqual({ total: 1, ids: [0] });
  });

  void it('{ total, from, to } runs the inclusive range', () => {
    expect(resolveShardScheme({ total: 10, from: 4, to: 7 })).toEqual({ total: 10, ids: [4, 5, 6, 7] });
    expect(resolveShardScheme({ total: 10, from: 9, to: 9 })).toEqual({ total: 10, ids: [9] });
  });

  void it('does not modify the ids array it was given', () => {
    const ids = [3, 0, 2];
    resolveShardScheme({ total: 4, ids });
    expect(ids).toEqual([3, 0, 2]);
  });
});

void describe('shard scheme validation', () => {
  void it('names shards.ids for a duplicate id', () => {
    const error = errorOf(() => validateShardScheme({ total: 4, ids: [0, 2, 2] }));
    expect(error.option).toBe('shards.ids');
    expect(error.message).toContain('shards.ids');
    expect(error.message).toMatch(/2 is listed twice/);
  });

  void it('names shards.ids for an id out of range, negative, or not an integer', () => {
    for (const ids of [[0, 4], [-1], [1.5], ['1'], []] as unknown[][]) {
      const error = errorOf(() => validateShardScheme({ total: 4, ids }));
      expect(error.option).toBe('shards.ids');
      expect(error.message).toContain('shards.ids');
    }
  });

  void it('names shards.from and shards.to for a bad range', () => {
    expect(errorOf(() => validateShardScheme({ total: 4, from: -1, to: 2 })).option).toBe('shards.from');
    expect(errorOf(() => validateShardScheme({ total: 4, from: 4, to: 4 })).option).toBe('shards.from');
    expect(errorOf(() => validateShardScheme({ total: 4, from: 3, to: 2 })).option).toBe('shards.to');
    expect(errorOf(() => validateShardScheme({ total: 4, from: 0, to: 4 })).option).toBe('shards.to');
    expect(errorOf(() => validateShardScheme({ total: 4, from: 0 })).option).toBe('shards.to');
    const error = errorOf(() => validateShardScheme({ total: 4, from: 2, to: 1 }));
    expect(error.message).toContain('shards.to');
  });

  void it('names shards.total for a missing, zero or fractional total', () => {
    for (const total of [undefined, 0, -2, 2.5, '2']) {
      const error = errorOf(() => validateShardScheme({ total, ids: [0] }));
      expect(error.option).toBe('shards.total');
      expect(error.message).toContain('shards.total');
    }
  });

  void it('names shards for a scheme of the wrong shape', () => {
    expect(errorOf(() => validateShardScheme('all')).option).toBe('shards');
    expect(errorOf(() => validateShardScheme(null)).option).toBe('shards');
    expect(errorOf(() => validateShardScheme({ total: 2 })).option).toBe('shards');
  });

  void it('accepts valid schemes', () => {
    expect(() => validateShardScheme(undefined)).not.toThrow();
    expect(() => validateShardScheme('auto')).not.toThrow();
    expect(() => validateShardScheme({ total: 4, ids: [3, 1] })).not.toThrow();
    expect(() => validateShardScheme({ total: 4, from: 0, to: 3 })).not.toThrow();
  });
});

void describe('Cluster constructor', () => {
  const base = { token: 'a-token', intents: 513 };

  void it('throws the scheme errors before anything starts', () => {
    expect(errorOf(() => new Cluster({ ...base, shards: { total: 4, ids: [1, 1] } })).option).toBe('shards.ids');
    expect(errorOf(() => new Cluster({ ...base, shards: { total: 4, ids: [5] } })).option).toBe('shards.ids');
    expect(errorOf(() => new Cluster({ ...base, shards: { total: 4, from: 5, to: 6 } })).option).toBe('shards.from');
    expect(errorOf(() => new Cluster({ ...base, shards: { total: 4, from: 2, to: 1 } })).option).toBe('shards.to');
    expect(errorOf(() => new Cluster({ ...base, shards: { total: 0, ids: [0] } })).option).toBe('shards.total');
  });

  void it('accepts a valid scheme and reports no shards before up()', () => {
    const cluster = new Cluster({ ...base, shards: { total: 4, ids: [3, 1] } });
    expect(cluster.total).toBe(0);
    expect(cluster.shards.size).toBe(0);
    expect(() => cluster.shardIdForGuild('81384788765712384')).toThrow(/up\(\)/);
  });
});

void describe('shardIdForGuild', () => {
  void it('is (guild_id >> 22) % total, computed without losing precision', () => {
    const ids = ['81384788765712384', '41771983423143937', '1180594437185155072', '9223372036854775807'];
    for (const id of ids) {
      for (const total of [1, 2, 3, 16, 1000]) {
        expect(shardIdForGuild(id, total)).toBe(Number((BigInt(id) >> 22n) % BigInt(total)));
        expect(shardIdForGuild(BigInt(id), total)).toBe(Number((BigInt(id) >> 22n) % BigInt(total)));
      }
    }
    // An id just below a multiple of 2^22 rounds up as a double: a Number-based shift would pick the wrong shard.
    const id = (1n << 60n) + (1n << 22n) - 1n;
    expect(Math.floor(Number(id) / 2 ** 22) % 2).toBe(1);
    expect(shardIdForGuild(id.toString(), 2)).toBe(0);
  });

  void it('names guildId for an id that is not a snowflake', () => {
    expect(errorOf(() => shardIdForGuild('not-a-number', 2)).option).toBe('guildId');
    expect(errorOf(() => shardIdForGuild('-5', 2)).option).toBe('guildId');
  });
});
