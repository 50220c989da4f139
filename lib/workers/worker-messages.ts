import type { GatewaySendPayload } from 'discord-api-types/v10';
import type { HandshakeKind } from '../core/interfaces/shard-options.interface';
import type { ShardSession } from '../core/interfaces/shard-session.interface';
import type { ShardInfo } from '../core/shard/shard';
import type { ShardCounters } from '../core/shard/shard-counters';
import type { ShardState } from '../core/shard/shard-state';

/** What the main thread gives a shard worker at start (`workerData`). */
export interface ShardWorkerData {
  /** The bot token: used by the worker's shards, never logged nor sent back. */
  token: string;
  /** The shard options that can cross a thread (functions and class instances are left out). */
  shardOptions: Record<string, unknown>;
  total: number;
  gatewayUrl: string;
  /** The dispatch filter at start: `null` decodes every event. */
  wanted: string[] | null;
  /** The events forwarded undecoded at start: `null` forwards every event that is not wanted. */
  forwarded: string[] | null;
  /** How often the worker reports its shards' sessions and figures, ms. */
  sessionReportMs: number;
}

/** The figures of a shard's {@link ShardCounters}, as they cross from its worker (a structured clone). */
export type ShardCountersData = Pick<
  ShardCounters,
  'eventsByType' | 'reconnectsByReason' | 'identifies' | 'resumes' | 'payloadBytes' | 'receivedBytes' | 'commandsSent'
>;

/** Main thread to worker. */
export type ToWorker =
  /** `guarded`: the shard asks the main thread (`handshakeGuard`) before each IDENTIFY and RESUME. */
  | { type: 'start'; shardId: number; session: ShardSession | null; guarded: boolean }
  | { type: 'close'; id: number; shardId: number; resumable: boolean }
  | { type: 'send'; id: number; shardId: number; command: GatewaySendPayload }
  | { type: 'restart'; id: number; shardId: number }
  | { type: 'pause' | 'resume'; shardId: number }
  | { type: 'filter'; wanted: string[] | null; forwarded: string[] | null }
  | { type: 'granted'; id: number; error?: string }
  /** The answer of the shard's `handshakeGuard` to a `guard` question. */
  | { type: 'guarded'; id: number; allowed: boolean }
  | { type: 'ping'; id: number }
  /** One batch handled: the worker's shards read on while few batches wait. */
  | { type: 'ack' };

/** Worker to main thread. */
export type FromWorker =
  /**
   * `d` is the JSON text of the event data, parsed on the main thread. READY and RESUMED carry the session they
   * (re)started, so that it is known when they are delivered, and not before.
   */
  | { type: 'dispatch'; shardId: number; t: string; s: number; d: string; session?: ShardSession | null }
  /** A dispatch the filter forwards undecoded: its payload bytes, never parsed in the worker or on the main thread. */
  | { type: 'forwarded'; shardId: number; t: string; s: number; frame: Uint8Array }
  /** A dispatch whose data cannot cross to the main thread (JSON.stringify fails on it): reported there, skipped. */
  | { type: 'unreadable'; shardId: number; t: string; s: number; problem: string; session?: ShardSession | null }
  /** `fatal`: the close code and reason when the state is `FatallyClosed`. */
  | { type: 'state'; shardId: number; state: ShardState; fatal?: { code: number; reason: string } }
  | { type: 'session'; shardId: number; session: ShardSession | null }
  /** A shard's figures, sent first in each batch when they changed, and with the periodic session reports. */
  | { type: 'stats'; shardId: number; info: ShardInfo; counters: ShardCountersData }
  | { type: 'debug'; shardId: number; message: string }
  | { type: 'error'; shardId: number | null; message: string; name: string }
  | { type: 'acquire'; id: number; shardId: number }
  | { type: 'abort-acquire'; id: number }
  | { type: 'refund-identify'; shardId: number }
  /** The shard wrote the IDENTIFY its grant allowed (`IIdentifyQueue.identified`). */
  | { type: 'identified'; shardId: number }
  /** The shard asks its `handshakeGuard` whether it may send this handshake. */
  | { type: 'guard'; id: number; shardId: number; kind: HandshakeKind }
  | { type: 'reply'; id: number; ok: boolean; value?: unknown; error?: string; errorName?: string }
  | { type: 'pong'; id: number; info: ShardInfo[] }
  | { type: 'hello' }
  | { type: 'batch'; messages: FromWorker[] };

/** Replaces every occurrence of `token` in `text`. */
export function redactToken(text: string, token: string): string {
  return token ? text.split(token).join('[token]') : text;
}
