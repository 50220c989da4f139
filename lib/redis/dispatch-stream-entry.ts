import type { GatewayDispatch } from '../core/interfaces/gateway-dispatch.interface';
import { redisKey, type RedisClient } from './redis-options.interface';

/**
 * The Redis layout of `delivery: 'redis-streams'`, shared by the gateway processes and the worker apps of one bot
 * (one `keyPrefix`):
 *
 * - `{<keyPrefix>}:dispatch:<shard id>`: one stream per shard, its entries the dispatches some worker group wants
 *   (an entry per publish: the events of one event-loop turn, see {@link encodeDispatchEntry});
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

/** One event as the publisher writes it into an entry: its name, sequence, session, receipt time and payload bytes. */
export interface EntryEvent {
  /** Event name. */
  t: string;
  /** Sequence number. */
  s: number;
  /** Session id (none for events without a session). */
  sessionId?: string;
  /** When the gateway process received it (see {@link PublishedDispatch.receivedAt}). */
  receivedAt: number;
  /** A JSON object with the event data as `d`: the gateway payload as received, or {@link dataPayload}'s. */
  payload: Buffer;
}

/** One event of an entry read back: the dispatch, or why it cannot be one. */
export type DecodedEvent = { ok: true; event: PublishedDispatch } | { ok: false; problem: string };

/** One stream entry read back: its events (each decoded on its own), or why the entry cannot be read at all. */
export type DecodedEntry = { ok: true; shardId: number; events: DecodedEvent[] } | { ok: false; problem: string };

/** `{"d":<data as JSON>}`: the payload of an event the gateway process decoded. Throws when `JSON.stringify` does. */
export function dataPayload(d: unknown): Buffer {
  return Buffer.from(`{"d":${JSON.stringify(d ?? null)}}`);
}

/**
 * The fields of one stream entry, holding the events of one publish for one shard, in sequence order:
 * `sh` the shard id, `m` a JSON array with one `[t, s, sessionId or "", receivedAt, payload byte length]` per event,
 * and `p` their payloads one after the other (each a JSON object whose `d` is the event data). The byte lengths let a
 * worker read each payload on its own, so one broken payload costs only its own event.
 */
export function encodeDispatchEntry(shardId: number, events: readonly EntryEvent[]): (string | Buffer)[] {
  const meta = new Array<unknown[]>(events.length);
  const payloads = new Array<Buffer>(events.length);
  for (let i = 0; i < events.length; i++) {
    const event = events[i];
    meta[i] = [event.t, event.s, event.sessionId ?? '', event.receivedAt, event.payload.length];
    payloads[i] = event.payload;
  }
  return ['sh', String(shardId), 'm', JSON.stringify(meta), 'p', payloads.length === 1 ? payloads[0] : Buffer.concat(payloads)];
}

/**
 * Reads the fields of a stream entry (as XREADGROUP returns them, strings or Buffers: name, value, name, value...).
 * Never throws: an entry whose layout is broken is one problem; an event whose own name, sequence or payload is
 * broken is a problem of that event only.
 */
export function decodeDispatchEntry(fields: unknown): DecodedEntry {
  if (!Array.isArray(fields) || fields.length % 2 !== 0) return { ok: false, problem: 'fields are not name/value pairs' };
  let shRaw: unknown, metaRaw: unknown, payloadRaw: unknown;
  for (let i = 0; i < fields.length; i += 2) {
    const value: unknown = fields[i + 1];
    switch (String(fields[i])) {
      case 'sh': shRaw = value; break;
      case 'm': metaRaw = value; break;
      case 'p': payloadRaw = value; break;
    }
  }
  const shText = textOf(shRaw);
  const shardId = Number(shText);
  if (shText === undefined || shText === '' || !Number.isSafeInteger(shardId) || shardId < 0) return { ok: false, problem: 'sh (shard id) is not an integer >= 0' };
  let meta: unknown;
  try {
    meta = JSON.parse(textOf(metaRaw) ?? '');
  } catch {
    return { ok: false, problem: 'm (event list) is not JSON' };
  }
  if (!Array.isArray(meta) || meta.length === 0) return { ok: false, problem: 'm (event list) is not a non-empty array' };
  const payloads = Buffer.isBuffer(payloadRaw) ? payloadRaw : typeof payloadRaw === 'string' ? Buffer.from(payloadRaw) : null;
  if (payloads === null) return { ok: false, problem: 'p (payloads) is missing' };
  const items: unknown[][] = [];
  const lengths: number[] = [];
  let total = 0;
  for (const item of meta) {
    if (!Array.isArray(item) || !isCount(item[4])) return { ok: false, problem: 'm (event list) has an event without a byte length' };
    items.push(item);
    lengths.push(item[4]);
    total += item[4];
  }
  if (total !== payloads.length) return { ok: false, problem: `m (event list) gives ${total} payload bytes, p has ${payloads.length}` };
  const events = new Array<DecodedEvent>(items.length);
  let offset = 0;
  for (let i = 0; i < items.length; i++) {
    events[i] = decodeEvent(shardId, items[i], payloads, offset, offset + lengths[i]);
    offset += lengths[i];
  }
  return { ok: true, shardId, events };
}

function decodeEvent(shardId: number, item: unknown[], payloads: Buffer, start: number, end: number): DecodedEvent {
  const [t, s, sid, at] = item;
  if (typeof t !== 'string' || t === '') return { ok: false, problem: 't (event name) is missing' };
  if (!isCount(s)) return { ok: false, problem: 's (sequence) is not an integer >= 0' };
  if (typeof sid !== 'string') return { ok: false, problem: 'the session id is not a string' };
  let payload: unknown;
  try {
    payload = JSON.parse(payloads.toString('utf8', start, end));
  } catch {
    return { ok: false, problem: 'its payload is not JSON' };
  }
  if (typeof payload !== 'object' || payload === null || !('d' in payload)) return { ok: false, problem: 'its payload has no d' };
  const receivedAt = typeof at === 'number' && Number.isFinite(at) ? at : 0;
  return { ok: true, event: { t, s, shardId, sessionId: sid === '' ? undefined : sid, d: payload.d, receivedAt } };
}

/** An integer >= 0 (a sequence, a byte length). */
function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function textOf(value: unknown): string | undefined {
  return Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'string' ? value : undefined;
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
