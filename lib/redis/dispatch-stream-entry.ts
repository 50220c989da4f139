import type { ForwardedDispatch } from '../core/interfaces/forwarded-dispatch.interface';
import type { GatewayDispatch } from '../core/interfaces/gateway-dispatch.interface';
import { redisKey, type RedisClient } from './redis-options.interface';

/**
 * The Redis layout of `delivery: 'redis-streams'`, shared by the gateway processes and the worker apps of one bot
 * (one `keyPrefix`):
 *
 * - `{<keyPrefix>}:dispatch:<shard id>`: one stream per shard, its entries the dispatches some worker group wants;
 * - `{<keyPrefix>}:dispatch:shards`: the bot's shard count, written by the gateway processes;
 * - `{<keyPrefix>}:workers:groups` (a set) and `{<keyPrefix>}:workers:group:<group>` (the event names the group
 *   wants, as JSON, with a TTL its workers renew): the live worker groups.
 */
export const dispatchStreamKeys = {
  /** The stream of one shard's dispatches. */
  stream: (prefix: string, shardId: number): string => redisKey(prefix, 'dispatch', shardId),
  /** The bot's shard count. */
  shardCount: (prefix: string): string => redisKey(prefix, 'dispatch', 'shards'),
  /** The set of worker group names ever registered. */
  groups: (prefix: string): string => redisKey(prefix, 'workers', 'groups'),
  /** What one worker group wants, while one of its workers is alive. */
  group: (prefix: string, group: string): string => redisKey(prefix, 'workers', 'group', group),
};

/** One dispatch as a gateway process received it, with when (epoch ms, sub-millisecond). */
export interface PublishedDispatch extends GatewayDispatch {
  /** When the gateway process received it: `performance.timeOrigin + performance.now()`, ms. */
  receivedAt: number;
}

/** One stream entry read back: the dispatch, or why it cannot be one. */
export type DecodedEntry = { ok: true; event: PublishedDispatch } | { ok: false; problem: string };

/**
 * The fields of a stream entry: `t` event name, `s` sequence, `sh` shard id, `sid` session id (empty when none),
 * `at` receipt time, and either `d` the event data as JSON (an event the gateway process decoded) or `f` the whole
 * gateway payload as received (an event it forwarded undecoded; its `d` is the data).
 */
export function encodeDispatch(event: PublishedDispatch): string[] {
  return ['t', event.t, 's', String(event.s), 'sh', String(event.shardId), 'sid', event.sessionId ?? '', 'at', String(event.receivedAt), 'd', JSON.stringify(event.d ?? null)];
}

/** The fields of a stream entry (see {@link encodeDispatch}) for an event forwarded undecoded: its frame as it came. */
export function encodeForwarded(event: ForwardedDispatch, receivedAt: number): (string | Buffer)[] {
  return ['t', event.t, 's', String(event.s), 'sh', String(event.shardId), 'sid', event.sessionId ?? '', 'at', String(receivedAt), 'f', event.frame];
}

/** Reads the fields of a stream entry (as XREADGROUP returns them: name, value, name, value...). Never throws. */
export function decodeDispatch(fields: unknown): DecodedEntry {
  if (!Array.isArray(fields) || fields.length % 2 !== 0) return { ok: false, problem: 'fields are not name/value pairs' };
  // Read in one pass, without a map per entry (a worker decodes every entry it reads).
  let t: unknown, sRaw: unknown, shRaw: unknown, sid: unknown, atRaw: unknown, raw: unknown, frame: unknown;
  for (let i = 0; i < fields.length; i += 2) {
    const value: unknown = fields[i + 1];
    switch (String(fields[i])) {
      case 't': t = value; break;
      case 's': sRaw = value; break;
      case 'sh': shRaw = value; break;
      case 'sid': sid = value; break;
      case 'at': atRaw = value; break;
      case 'd': raw = value; break;
      case 'f': frame = value; break;
    }
  }
  const s = Number(sRaw);
  const shardId = Number(shRaw);
  const at = Number(atRaw);
  if (typeof t !== 'string' || t === '') return { ok: false, problem: 't (event name) is missing' };
  if (!Number.isSafeInteger(s) || s < 0) return { ok: false, problem: 's (sequence) is not an integer >= 0' };
  if (!Number.isSafeInteger(shardId) || shardId < 0) return { ok: false, problem: 'sh (shard id) is not an integer >= 0' };
  if (sid !== undefined && typeof sid !== 'string') return { ok: false, problem: 'sid (session id) is not a string' };
  let d: unknown;
  if (typeof raw === 'string') {
    try {
      d = JSON.parse(raw);
    } catch {
      return { ok: false, problem: 'd (data) is not JSON' };
    }
  } else if (typeof frame === 'string') {
    let payload: unknown;
    try {
      payload = JSON.parse(frame);
    } catch {
      return { ok: false, problem: 'f (gateway payload) is not JSON' };
    }
    if (typeof payload !== 'object' || payload === null || !('d' in payload)) return { ok: false, problem: 'f (gateway payload) has no d' };
    d = payload.d;
  } else {
    return { ok: false, problem: 'd (data) is missing' };
  }
  return { ok: true, event: { t, s, shardId, sessionId: sid ? sid : undefined, d, receivedAt: Number.isFinite(at) ? at : 0 } };
}

/** Now, as `receivedAt` measures it: epoch ms with sub-millisecond precision, comparable across processes of one machine. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The bot's shard count as the gateway processes wrote it; waits (retrying with backoff up to 5 s) until one has,
 * or until `stopped()` says to give up (then 0).
 */
export async function waitForShardCount(client: RedisClient, prefix: string, stopped: () => boolean, log: (message: string) => void): Promise<number> {
  for (let attempt = 0; !stopped(); attempt++) {
    const value = Number(await client.get(dispatchStreamKeys.shardCount(prefix)));
    if (Number.isInteger(value) && value > 0) return value;
    if (attempt === 0) log('waiting for a gateway process to publish the shard count');
    await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** Math.min(attempt, 6))).unref());
  }
  return 0;
}
