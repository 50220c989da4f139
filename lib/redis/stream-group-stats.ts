import { dispatchStreamKeys } from './dispatch-stream-entry';
import type { StreamGroupStats } from '../core/interfaces/stream-delivery-stats.interface';
import type { RedisClient } from './redis-options.interface';

export type { StreamGroupStats };

/** Field/value array (as XINFO answers) to a map. */
function pairs(reply: unknown): Map<string, unknown> {
  const map = new Map<string, unknown>();
  if (!Array.isArray(reply)) return map;
  for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), reply[i + 1]);
  return map;
}

function count(value: unknown): number | null {
  const n = Number(value);
  return value === null || value === undefined || !Number.isFinite(n) ? null : n;
}

/**
 * Reads, in one pipeline, the groups of the streams of `shardIds` (XINFO STREAM and XINFO GROUPS each): their lag,
 * pending entries and what the cap dropped before they read it. Streams that do not exist yet are left out; with
 * `group`, only that group is reported.
 */
export async function readStreamGroupStats(client: RedisClient, prefix: string, shardIds: readonly number[], group?: string): Promise<StreamGroupStats[]> {
  if (shardIds.length === 0) return [];
  const pipeline = client.pipeline();
  for (const shardId of shardIds) {
    const key = dispatchStreamKeys.stream(prefix, shardId);
    pipeline.xinfo('STREAM', key);
    pipeline.xinfo('GROUPS', key);
  }
  const results = (await pipeline.exec()) ?? [];
  const stats: StreamGroupStats[] = [];
  shardIds.forEach((shardId, i) => {
    const [streamError, streamReply] = results[2 * i] ?? [new Error('no reply'), null];
    const [groupsError, groupsReply] = results[2 * i + 1] ?? [new Error('no reply'), null];
    // A stream nobody created yet answers "no such key".
    if (streamError || groupsError || !Array.isArray(groupsReply)) return;
    const stream = pairs(streamReply);
    const added = count(stream.get('entries-added'));
    const length = count(stream.get('length')) ?? 0;
    for (const entry of groupsReply) {
      const info = pairs(entry);
      const name = String(info.get('name'));
      if (group !== undefined && name !== group) continue;
      // A group that never read anything (created at the end of an empty stream) has no entries-read yet: 0.
      const read = count(info.get('entries-read')) ?? (String(info.get('last-delivered-id')) === '0-0' ? 0 : null);
      const trimmed = added === null ? 0 : added - length;
      stats.push({
        group: name,
        shardId,
        consumers: count(info.get('consumers')) ?? 0,
        pending: count(info.get('pending')) ?? 0,
        lag: count(info.get('lag')),
        droppedByCap: read === null ? 0 : Math.max(0, trimmed - read),
      });
    }
  });
  return stats;
}
