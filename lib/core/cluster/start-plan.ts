import type { RESTGetAPIGatewayBotResult } from 'discord-api-types/v10';
import { SessionStartLimitError } from '../errors/session-start-limit.error';
import type { ClusterOptions, IdentifyQueueFactoryOptions } from '../interfaces/cluster-options.interface';
import type { IIdentifyQueue } from '../interfaces/identify-queue.interface';
import type { ShardSession } from '../interfaces/shard-session.interface';
import { realClock } from '../shard/real-clock';
import { InMemoryIdentifyQueue } from '../queue/in-memory-identify-queue';
import { resolveShardScheme } from './resolve-shard-scheme';
import { RestGatewayInfoSource } from './rest-gateway-info-source';

/** What a cluster starts with: its shards, their sessions, where to connect and the identify queue. */
export interface StartPlan {
  /** Shard count of the whole bot. */
  total: number;
  /** The shards this cluster starts, ascending. */
  ids: number[];
  /** The saved sessions the shards resume, by shard id (the others identify). */
  sessions: Map<number, ShardSession>;
  /** The gateway URL to connect to. */
  gatewayUrl: string;
  /** The identify queue: the options', the factory's, or an in-memory one sized by `max_concurrency`. */
  queue: IIdentifyQueue;
}

/** Where {@link resolveStartPlan} reads and writes sessions (store failures are reported there, never thrown). */
export interface StartPlanSessions {
  /** The saved session of a shard, or null. */
  read(shardId: number): Promise<ShardSession | null>;
  /** Saves a shard's session. */
  write(shardId: number, session: ShardSession): Promise<void>;
}

/**
 * Works out how a cluster starts: asks `GET /gateway/bot` (or `options.gatewayInfo`) when the shard count, the
 * gateway URL or the identify queue need it, resolves the shard scheme, writes the sessions `takeGiven` hands over
 * (the options' `sessions`, written once) to the store,
 * reads the saved sessions of the shards (those of another shard count are ignored), checks the session-start
 * budget and builds the identify queue.
 * @throws {@link SessionStartLimitError} when more shards must identify than the budget allows (and
 * `waitForSessionStartLimit` is off).
 */
export async function resolveStartPlan(
  options: ClusterOptions,
  token: string,
  store: StartPlanSessions,
  takeGiven: () => ReadonlyMap<number, ShardSession> | null,
  debug: (message: string) => void,
): Promise<StartPlan> {
  const scheme = options.shards ?? 'auto';
  const needInfo = scheme === 'auto' || !options.gatewayUrl || !options.identifyQueue;
  let info: RESTGetAPIGatewayBotResult | null = null;
  if (needInfo) {
    const source = options.gatewayInfo ?? new RestGatewayInfoSource({ token, apiUrl: options.apiUrl, allowInsecure: options.allowInsecureGateway });
    info = await source.fetch();
    debug(`GET /gateway/bot: ${info.shards} shard(s), max_concurrency ${info.session_start_limit.max_concurrency}, ${info.session_start_limit.remaining} session start(s) left`);
  }
  const { total, ids } = resolveShardScheme(scheme, info?.shards);
  for (const [id, session] of takeGiven() ?? []) await store.write(id, session);

  const sessions = new Map<number, ShardSession>();
  for (const id of ids) {
    const saved = await store.read(id);
    if (saved && (saved.shardCount === undefined || saved.shardCount === total)) sessions.set(id, saved);
    else if (saved) debug(`shard ${id}: ignoring a saved session of a ${saved.shardCount}-shard bot`);
  }
  const needIdentify = ids.length - sessions.size;
  const limit = info?.session_start_limit;
  if (limit && needIdentify > limit.remaining && !options.waitForSessionStartLimit) {
    throw new SessionStartLimitError(needIdentify, limit.remaining, limit.reset_after);
  }
  const queueOptions: IdentifyQueueFactoryOptions = {
    maxConcurrency: limit?.max_concurrency ?? 1,
    windowMs: options.identifyWindowMs,
    sessionStartLimit: limit ? { remaining: limit.remaining, total: limit.total, resetAfter: limit.reset_after } : undefined,
    log: debug,
    clock: options.clock ?? realClock,
  };
  const queue =
    options.identifyQueue ?? (options.identifyQueueFactory ? options.identifyQueueFactory(queueOptions) : new InMemoryIdentifyQueue(queueOptions));
  return { total, ids, sessions, gatewayUrl: options.gatewayUrl ?? info!.url, queue };
}
