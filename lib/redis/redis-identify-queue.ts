import { randomUUID } from 'node:crypto';
import type { RESTGetAPIGatewayBotResult } from 'discord-api-types/v10';
import type { Clock, ClockTimer } from '../core/interfaces/clock.interface';
import type { IIdentifyQueue } from '../core/interfaces/identify-queue.interface';
import { abortError } from '../core/queue/abort-error';
import type { SessionStartBudget } from '../core/queue/in-memory-identify-queue';
import { realClock } from '../core/shard/real-clock';
import { closeRedisClient, createRedisClient } from './create-redis-client';
import { redisKey, redisKeyPrefix, type RedisClient, type RedisConnectionOptions } from './redis-options.interface';
import { RedisScript } from './redis-script';
import type { IdentifyWaiter as Waiter } from '../core/queue/identify-waiter';

/** Options of {@link RedisIdentifyQueue}. */
export type RedisIdentifyQueueOptions = RedisConnectionOptions & {
  /** `max_concurrency` from `GET /gateway/bot`. @defaultValue `1` */
  maxConcurrency?: number;
  /** Length of one identify window, ms. @defaultValue `5000` */
  windowMs?: number;
  /**
   * `session_start_limit` from `GET /gateway/bot`. The budget is kept in Redis and shared by every process using
   * the same key prefix: the first one to start initialises it, grants decrement it, and when it is spent grants
   * wait for its reset, after which it starts again from `total`. @defaultValue no budget is enforced
   */
  sessionStartLimit?: SessionStartBudget;
  /** Receives a line when grants wait for the session-start budget, when it resets and when Redis fails. */
  log?: (message: string) => void;
  /** Delay before retrying after a Redis error, ms. @defaultValue `1000` */
  retryDelayMs?: number;
  /**
   * Longest time from asking Redis for a grant to using it, ms. A grant key lives `spacing + grantHoldMs` until
   * the shard reports its IDENTIFY written (`identified`), then `spacing` from that moment; a grant whose answer
   * took longer than this is given back unused, so a slow Redis or a slow process never shortens the window.
   * @defaultValue `windowMs`
   */
  grantHoldMs?: number;
  /**
   * Where this process times its waits between asks and a grant's lateness (`grantHoldMs`). The grant keys expire
   * on Redis's clock whatever this is. @defaultValue the real clock
   */
  clock?: Clock;
};

/** The time between two grants of one rate-limit key: the window plus a margin (5 %, from 50 to 250 ms). */
export function identifySpacingMs(windowMs: number): number {
  return windowMs + Math.min(250, Math.max(50, Math.ceil(windowMs * 0.05)));
}

/** Longest single wait on the budget before asking Redis again, ms. */
const MAX_BUDGET_POLL_MS = 60_000;
/** How long a session-start budget lasts once it has reset, ms. */
const BUDGET_PERIOD_MS = 86_400_000;

/**
 * KEYS[1] grant key of the rate-limit key, KEYS[2] budget key.
 * ARGV[1] owner, ARGV[2] lifetime of a new grant ms (spacing + hold), ARGV[3] '1' when the budget is enforced, ARGV[4] budget total, ARGV[5] budget period ms.
 * Returns { 1, spacing, reset } on a grant, { 0, ms until the grant key expires, 0 } while it is held,
 * { -1, ms until the budget resets, reset } while the budget is spent; `reset` is 1 when the budget was re-initialised.
 */
const GRANT_SCRIPT = new RedisScript(`
local held = redis.call('PTTL', KEYS[1])
if held == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {0, tonumber(ARGV[2]), 0}
end
if held >= 0 then return {0, held, 0} end
local reset = 0
if ARGV[3] == '1' then
  local left = redis.call('GET', KEYS[2])
  if not left then
    redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
    left = ARGV[4]
    reset = 1
  end
  if tonumber(left) <= 0 then
    local wait = redis.call('PTTL', KEYS[2])
    if wait < 0 then
      redis.call('PEXPIRE', KEYS[2], ARGV[5])
      wait = tonumber(ARGV[5])
    end
    return {-1, wait, reset}
  end
  redis.call('DECR', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
return {1, tonumber(ARGV[2]), reset}
`);

/**
 * KEYS[1] grant key; ARGV[1] owner, ARGV[2] spacing ms. The IDENTIFY of the grant was written just before this
 * reached Redis: the window starts now. Returns 1, or 0 when the grant is no longer the owner's.
 */
const REARM_SCRIPT = new RedisScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`);

/**
 * KEYS[1] grant key, KEYS[2] budget key; ARGV[1] owner, ARGV[2] '1' when the budget is enforced.
 * Gives back a grant nobody used (its waiter was aborted while Redis answered), and its session start.
 */
const RELEASE_SCRIPT = new RedisScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCR', KEYS[2]) end
return 1
`);

/** The waiters of one rate-limit key in this process, lowest shard id first; only the head asks Redis. */
interface Lane {
  key: number;
  waiters: Waiter[];
  timer: ClockTimer | null;
  busy: boolean;
  budgetWaitLogged: boolean;
}

/**
 * An {@link IIdentifyQueue} shared by every process that uses the same Redis and key prefix: one IDENTIFY per
 * rate-limit key (`shardId % maxConcurrency`) per window across all of them, and one session-start budget.
 *
 * Each grant is a key set atomically with `SET NX PX spacing+hold`, where spacing is the window plus a margin.
 * The window is measured from the moment the IDENTIFY is written: the shard sends it as soon as the grant
 * arrives (a grant that took longer than `grantHoldMs` to arrive is given back unused) and then reports it with
 * `identified()`, which re-arms the key to expire `spacing` after that moment. A used grant is never released, so
 * the window holds even if the IDENTIFY was sent just before the process died, and a dead process delays others
 * at most until its key expires. Waiters of one process ask in shard-id order and sleep in between.
 *
 * ```ts
 * const identifyQueue = new RedisIdentifyQueue({ url: 'redis://127.0.0.1:6379', keyPrefix: 'ndg:my-bot', maxConcurrency: 16 });
 * const cluster = new Cluster({ token, intents, identifyQueue, shards: { total: 64, from: 0, to: 15 } });
 * ```
 */
export class RedisIdentifyQueue implements IIdentifyQueue {
  /** `max_concurrency` this queue enforces. */
  readonly maxConcurrency: number;
  /** Time between two grants of one rate-limit key, ms. */
  readonly spacingMs: number;
  /** Longest time from asking for a grant to using it, ms. */
  readonly grantHoldMs: number;
  /** The prefix of every key this queue writes. */
  readonly keyPrefix: string;
  private readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private readonly log: (message: string) => void;
  private readonly budget: SessionStartBudget | undefined;
  private readonly retryDelayMs: number;
  private readonly clock: Clock;
  private readonly instanceId = randomUUID();
  private readonly lanes = new Map<number, Lane>();
  /** The owner string of the last grant handed to each shard, until the shard reports its IDENTIFY written. */
  private readonly granted = new Map<number, string>();
  private lateGrantLogged = false;
  private budgetInit: Promise<void> | null = null;
  private attempt = 0;
  private closed = false;

  /** A queue with the `max_concurrency` and `session_start_limit` of a `GET /gateway/bot` answer. */
  static fromGatewayBot(
    info: Pick<RESTGetAPIGatewayBotResult, 'session_start_limit'>,
    options: Omit<RedisIdentifyQueueOptions, 'maxConcurrency' | 'sessionStartLimit'>,
  ): RedisIdentifyQueue {
    const limit = info.session_start_limit;
    return new RedisIdentifyQueue({
      ...options,
      maxConcurrency: limit.max_concurrency,
      sessionStartLimit: { remaining: limit.remaining, total: limit.total, resetAfter: limit.reset_after },
    } as RedisIdentifyQueueOptions);
  }

  constructor(options: RedisIdentifyQueueOptions) {
    const maxConcurrency = options.maxConcurrency ?? 1;
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
      throw new Error(`RedisIdentifyQueue: maxConcurrency must be an integer >= 1, got ${String(maxConcurrency)}`);
    }
    const windowMs = options.windowMs ?? 5_000;
    if (!Number.isInteger(windowMs) || windowMs < 1) {
      throw new Error(`RedisIdentifyQueue: windowMs must be an integer >= 1, got ${String(windowMs)}`);
    }
    const budget = options.sessionStartLimit;
    if (budget) {
      for (const key of ['remaining', 'total', 'resetAfter'] as const) {
        if (!Number.isInteger(budget[key]) || budget[key] < 0) {
          throw new Error(`RedisIdentifyQueue: sessionStartLimit.${key} must be an integer >= 0, got ${String(budget[key])}`);
        }
      }
    }
    this.maxConcurrency = maxConcurrency;
    const hold = options.grantHoldMs ?? windowMs;
    if (!Number.isInteger(hold) || hold < 1) {
      throw new Error(`RedisIdentifyQueue: grantHoldMs must be an integer >= 1, got ${String(hold)}`);
    }
    this.spacingMs = identifySpacingMs(windowMs);
    this.grantHoldMs = hold;
    this.keyPrefix = redisKeyPrefix(options);
    this.log = options.log ?? (() => undefined);
    this.budget = budget ? { ...budget } : undefined;
    this.retryDelayMs = options.retryDelayMs ?? 1_000;
    this.clock = options.clock ?? realClock;
    const { client, owned } = createRedisClient(options);
    this.client = client;
    this.ownsClient = owned;
  }

  /** The Redis key that holds the current grant of a rate-limit key. */
  grantKey(rateLimitKey: number): string {
    return redisKey(this.keyPrefix, 'identify', 'grant', rateLimitKey);
  }

  /** The Redis key that holds the session starts left. */
  get budgetKey(): string {
    return redisKey(this.keyPrefix, 'identify', 'budget');
  }

  /** The shared session-start budget as Redis has it now, or null when it is not set (or not enforced). */
  async sessionStartsLeft(): Promise<{ remaining: number; resetAfter: number } | null> {
    const [left, ttl] = await Promise.all([this.client.get(this.budgetKey), this.client.pttl(this.budgetKey)]);
    return left === null ? null : { remaining: Number(left), resetAfter: Math.max(0, ttl) };
  }

  acquire(shardId: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new Error('The identify queue is closed'));
    if (signal?.aborted) return Promise.reject(abortError());
    const key = shardId % this.maxConcurrency;
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { key, waiters: [], timer: null, busy: false, budgetWaitLogged: false };
      this.lanes.set(key, lane);
    }
    const current = lane;
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { shardId, resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const index = current.waiters.indexOf(waiter);
          if (index >= 0) current.waiters.splice(index, 1);
          if (current.waiters.length === 0 && current.timer) {
            this.clock.clearTimeout(current.timer);
            current.timer = null;
          }
          reject(abortError());
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      let at = current.waiters.length;
      while (at > 0 && current.waiters[at - 1].shardId > shardId) at--;
      current.waiters.splice(at, 0, waiter);
      this.pump(current);
    });
  }

  /**
   * Re-arms the grant `shardId` used so that it expires `spacingMs` after now, the moment its IDENTIFY was
   * written. Without this call a grant lives `spacingMs + grantHoldMs`.
   */
  identified(shardId: number): void {
    const owner = this.granted.get(shardId);
    if (owner === undefined) return;
    this.granted.delete(shardId);
    if (this.closed) return;
    const key = this.grantKey(shardId % this.maxConcurrency);
    REARM_SCRIPT.run(this.client, [key], [owner, this.spacingMs]).catch((error: Error) =>
      this.log(`Identify queue: could not re-arm the grant of shard ${shardId} (${error.message}); it expires ${this.grantHoldMs} ms later`),
    );
  }

  /**
   * Rejects every waiting request and, when the client was created from a `url`, quits it. Grants already made
   * stay in Redis until they expire.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const lane of this.lanes.values()) {
      if (lane.timer) this.clock.clearTimeout(lane.timer);
      lane.timer = null;
      for (const waiter of lane.waiters.splice(0)) {
        if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
        waiter.reject(new Error('The identify queue is closed'));
      }
    }
    if (this.ownsClient) await closeRedisClient(this.client);
  }

  // ---- internals ----------------------------------------------------------------------------------

  /** Sets the shared budget from `sessionStartLimit` unless a process has already done so (once per instance). */
  private initBudget(): Promise<void> {
    const budget = this.budget;
    if (!budget) return Promise.resolve();
    this.budgetInit ??= this.client
      .set(this.budgetKey, budget.remaining, 'PX', Math.max(1, budget.resetAfter), 'NX')
      .then(() => undefined)
      .catch((error: unknown) => {
        this.budgetInit = null;
        throw error;
      });
    return this.budgetInit;
  }

  private pump(lane: Lane): void {
    if (this.closed || lane.busy || lane.timer || lane.waiters.length === 0) return;
    lane.busy = true;
    const askedAt = this.clock.now();
    const owner = `${this.instanceId}:${lane.waiters[0].shardId}:${++this.attempt}`;
    const keys = [this.grantKey(lane.key), this.budgetKey];
    const enforce = this.budget ? '1' : '0';
    this.initBudget()
      .then(() =>
        GRANT_SCRIPT.run<[number, number, number]>(this.client, keys, [
          owner,
          this.spacingMs + this.grantHoldMs,
          enforce,
          this.budget?.total ?? 0,
          BUDGET_PERIOD_MS,
        ]),
      )
      .then(
        ([status, ms, reset]) => {
          lane.busy = false;
          if (reset === 1) this.log(`Session start limit reset: ${this.budget?.total} session start(s) available`);
          if (status === 1) {
            lane.budgetWaitLogged = false;
            const waiter = lane.waiters.shift();
            if (!waiter || this.closed) {
              // Every waiter left while Redis answered: give the unused grant back.
              RELEASE_SCRIPT.run(this.client, keys, [owner, enforce]).catch(() => undefined);
              return;
            }
            const late = this.clock.now() - askedAt;
            if (late > this.grantHoldMs) {
              // Too late to use: the key may expire less than a window after an IDENTIFY sent now.
              lane.waiters.unshift(waiter);
              if (!this.lateGrantLogged) {
                this.lateGrantLogged = true;
                this.log(`Identify queue: a grant took ${Math.round(late)} ms to arrive (over grantHoldMs ${this.grantHoldMs}); given back and asked again`);
              }
              RELEASE_SCRIPT.run(this.client, keys, [owner, enforce]).then(
                () => this.pump(lane),
                () => this.wake(lane, this.retryDelayMs),
              );
              return;
            }
            if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
            this.granted.set(waiter.shardId, owner);
            waiter.resolve();
            this.wake(lane, this.spacingMs);
          } else if (status === -1) {
            if (!lane.budgetWaitLogged && lane.waiters.length > 0) {
              lane.budgetWaitLogged = true;
              this.log(`Session start limit reached: waiting ${ms} ms for it to reset before identifying`);
            }
            this.wake(lane, Math.min(ms, MAX_BUDGET_POLL_MS));
          } else {
            // A key in its hold time is usually re-armed to a window soon: look again a window later at most.
            this.wake(lane, Math.min(ms, this.spacingMs) + 1);
          }
        },
        (error: unknown) => {
          lane.busy = false;
          if (this.closed) return;
          this.log(`Identify queue: Redis failed (${(error as Error).message}); retrying in ${this.retryDelayMs} ms`);
          this.wake(lane, this.retryDelayMs);
        },
      );
  }

  /** Asks again for `lane` after `ms`, if anyone is still waiting then. */
  private wake(lane: Lane, ms: number): void {
    if (this.closed || lane.waiters.length === 0 || lane.timer) return;
    lane.timer = this.clock.setTimeout(() => {
      lane.timer = null;
      this.pump(lane);
    }, Math.max(0, ms));
  }
}
