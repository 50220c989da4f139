import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Subject, type Observable } from 'rxjs';
import type { Cluster } from '../core/cluster/cluster';
import type { Clock, ClockTimer } from '../core/interfaces/clock.interface';
import type { ISessionStore } from '../core/interfaces/session-store.interface';
import type { HandshakeKind } from '../core/interfaces/shard-options.interface';
import type { OwnershipEvent } from '../core/interfaces/shard-ownership-event.interface';
import type { ShardSession } from '../core/interfaces/shard-session.interface';
import { ShardState } from '../core/shard/shard-state';
import { closeRedisClient, createRedisClient, withDeadline } from './create-redis-client';
import { redisKey, redisKeyPrefix, type RedisClient, type RedisConnectionOptions } from './redis-options.interface';
import { RedisScript } from './redis-script';
import type { SessionWriteFence } from './redis-session-store';

/** Options of {@link ShardOwnership}. */
export type ShardOwnershipOptions = RedisConnectionOptions & {
  /** The cluster whose shards are claimed; started (`up()`) with `shards: { total, ownership: 'redis' }`. */
  cluster: Cluster;
  /** This process's id among the members. Must be unique per live process. @defaultValue `<hostname>-<pid>-<random>` */
  memberId?: string;
  /**
   * How long a lease (and a member's heartbeat) lasts without renewal, ms: the longest a dead process's shards
   * stay offline before the others take them over. @defaultValue `10000`
   */
  leaseTtlMs?: number;
  /** How often leases and the heartbeat are renewed and the shards balanced, ms. @defaultValue a third of `leaseTtlMs` */
  renewIntervalMs?: number;
  /**
   * Wait this long after joining before claiming shards, so that processes started together see each other and
   * claim their share instead of all of them claiming everything first. @defaultValue `renewIntervalMs`
   */
  joinDelayMs?: number;
  /** Receives a line for each claim, release, loss and membership change, and for Redis failures. */
  log?: (message: string) => void;
  /**
   * Where renewals, the join delay and the local lease deadlines are timed (Redis expires the leases on its own
   * clock whatever this is). @defaultValue the cluster's clock
   */
  clock?: Clock;
};

export type { OwnershipEvent };

interface Lease {
  shardId: number;
  /** `<memberId>|<random>`: unique per claim, checked by every renewal, release and handshake. */
  token: string;
  /** Time (on the clock, which never jumps) until which the lease is surely still ours: Redis expires it no sooner. */
  validUntil: number;
  releasing: boolean;
}

/**
 * KEYS[1] the members sorted set, KEYS[2] the epoch key; ARGV[1] member id, ARGV[2] TTL ms, ARGV[3] a new epoch.
 * Records the member's heartbeat at Redis's clock, drops members whose last heartbeat is a TTL old, sets the
 * epoch when Redis has none (first start, or Redis lost its data) and returns
 * `{ now, { member, heartbeat, ... }, epoch }`.
 */
const HEARTBEAT_SCRIPT = new RedisScript(`
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  redis.call('SET', KEYS[2], ARGV[3])
  epoch = ARGV[3]
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
return {now, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'), epoch}
`);

/**
 * KEYS lease keys; ARGV[1] TTL ms, ARGV[i + 1] the token for KEYS[i]. Extends each lease still holding its token
 * (1), sets again a lease Redis no longer has (2: it lost its data while the holder still held the lease, which
 * cannot have expired yet), and leaves a lease held by another token alone (0).
 */
const RENEW_SCRIPT = new RedisScript(`
local out = {}
for i = 1, #KEYS do
  local token = redis.call('GET', KEYS[i])
  if token == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    out[i] = 1
  elseif not token then
    redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1])
    out[i] = 2
  else
    out[i] = 0
  end
end
return out
`);

/** KEYS[1] lease key; ARGV[1] token. Deletes the lease only if it still holds the token. */
const RELEASE_SCRIPT = new RedisScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/** The Redis key of a shard's lease under `keyPrefix`. */
export function shardLeaseKey(keyPrefix: string, shardId: number): string {
  return redisKey(keyPrefix, 'shard', shardId, 'lease');
}

/** The member that holds a shard's lease now (per Redis), or null when it is free. */
export async function shardLeaseOwner(client: RedisClient, keyPrefix: string, shardId: number): Promise<string | null> {
  const token = await client.get(shardLeaseKey(keyPrefix, shardId));
  return token === null ? null : leaseOwner(token);
}

/** The member id part of a lease token. */
export function leaseOwner(token: string): string {
  const at = token.lastIndexOf('|');
  return at < 0 ? token : token.slice(0, at);
}

/** A member id that is unique per process: `<hostname>-<pid>-<random>`. */
export function defaultMemberId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Divides the shards of one bot among the processes that share a Redis and a key prefix, through leases.
 *
 * - Membership: each process heartbeats into a sorted set every `renewIntervalMs`; a member silent for
 *   `leaseTtlMs` is dropped. With `n` members sorted by id, member `i` targets `floor(total / n)` shards, plus one
 *   when `i < total % n`.
 * - Leases: a shard is claimed with `SET lease NX PX ttl` (free shards in bucket order, that is by id) and renewed
 *   with a compare-and-renew script. A member above its target releases shards gracefully: the shard closes
 *   resumably, its session is written to the store and flushed, then the lease is deleted; the member that claims
 *   it next resumes the session.
 * - Fencing: every IDENTIFY (before the identify queue is asked) and RESUME first renews the lease with its token
 *   (the shard's `handshakeGuard`), so a process whose lease was taken over never connects the session; session
 *   writes are checked against the lease token again at flush, by Redis ({@link writeFence}).
 * - Redis emptied: an epoch key reveals it; holders set their leases again and re-save their sessions, and nobody
 *   claims for a lease TTL. A process that cannot renew a lease before
 *   its local deadline (a little before Redis would expire it) closes the shard resumably without touching the
 *   stored session, which may already be someone else's.
 *
 * Give the cluster its session store wrapped in a {@link LeaseFencedSessionStore} on {@link holds}, so that a process
 * writes the sessions of the shards it holds only:
 *
 * ```ts
 * let ownership: ShardOwnership;
 * const sessionStore = new LeaseFencedSessionStore(new RedisSessionStore({ url, keyPrefix }), (id) => ownership.holds(id));
 * const cluster = new Cluster({
 *   token, intents, sessionStore,
 *   shards: { total: 12, ownership: 'redis' },
 *   identifyQueueFactory: (limits) => new RedisIdentifyQueue({ url, keyPrefix, ...limits }),
 * });
 * await cluster.up();
 * ownership = new ShardOwnership({ url, keyPrefix, cluster });
 * await ownership.start();
 * ```
 */
export class ShardOwnership {
  /** This process's member id. */
  readonly memberId: string;
  /** Lease TTL, ms. */
  readonly leaseTtlMs: number;
  /** The prefix of every key written. */
  readonly keyPrefix: string;

  private readonly cluster: Cluster;
  private readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private readonly renewIntervalMs: number;
  private readonly joinDelayMs: number;
  /** Safety margin taken off the TTL for the local deadline: clock drift and the renewal's own latency. */
  private readonly marginMs: number;
  private readonly log: (message: string) => void;
  private readonly leases = new Map<number, Lease>();
  private readonly starts = new Map<number, Promise<void>>();
  private readonly eventsSubject = new Subject<OwnershipEvent>();
  /** Shards whose lease could not be deleted on release (Redis did not answer): they expire on their own. */
  private readonly unreleasedLeases = new Set<number>();
  private memberList: string[] = [];
  private readonly clock: Clock;
  private tickTimer: ClockTimer | null = null;
  private watchdogTimer: ClockTimer | null = null;
  private expiryTimer: ClockTimer | null = null;
  private ticking: Promise<void> | null = null;
  private claimFrom = Infinity;
  /** The epoch seen in the last round, null before the first. */
  private epoch: string | null = null;
  private state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';

  /** Claims, graceful releases, losses and membership changes. */
  readonly events$: Observable<OwnershipEvent> = this.eventsSubject.asObservable();

  constructor(options: ShardOwnershipOptions) {
    const ttl = options.leaseTtlMs ?? 10_000;
    if (!Number.isInteger(ttl) || ttl < 300) throw new Error(`ShardOwnership: leaseTtlMs must be an integer >= 300, got ${String(ttl)}`);
    const renew = options.renewIntervalMs ?? Math.floor(ttl / 3);
    if (!Number.isInteger(renew) || renew < 1 || renew > ttl / 2) {
      throw new Error(`ShardOwnership: renewIntervalMs must be an integer from 1 to leaseTtlMs / 2, got ${String(renew)}`);
    }
    const joinDelay = options.joinDelayMs ?? renew;
    if (!Number.isInteger(joinDelay) || joinDelay < 0) {
      throw new Error(`ShardOwnership: joinDelayMs must be an integer >= 0, got ${String(joinDelay)}`);
    }
    const memberId = options.memberId ?? defaultMemberId();
    if (typeof memberId !== 'string' || memberId === '' || memberId.includes('|')) {
      throw new Error('ShardOwnership: memberId must be a non-empty string without "|"');
    }
    this.cluster = options.cluster;
    this.clock = options.clock ?? options.cluster.clock;
    this.memberId = memberId;
    this.leaseTtlMs = ttl;
    this.renewIntervalMs = renew;
    this.joinDelayMs = joinDelay;
    this.marginMs = Math.max(50, Math.ceil(ttl * 0.1));
    this.keyPrefix = redisKeyPrefix(options);
    this.log = options.log ?? (() => undefined);
    const { client, owned } = createRedisClient(options);
    this.client = client;
    this.ownsClient = owned;
    if (owned) client.on('error', (error: Error) => this.log(`Redis: ${error.message}`));
    // The cluster (the core) reports them too: ClusterService.ownedShards and ownership$, and the metrics.
    this.events$.subscribe((event) => this.cluster.recordOwnership(event));
  }

  /** The Redis key of a shard's lease; its value is the holder's token, `<memberId>|<random>`. */
  leaseKey(shardId: number): string {
    return shardLeaseKey(this.keyPrefix, shardId);
  }

  /** The Redis key of the epoch: a random value set when Redis has none, so that a Redis emptied by a restart is noticed. */
  get epochKey(): string {
    return redisKey(this.keyPrefix, 'epoch');
  }

  /** The Redis key of the members' heartbeats (a sorted set scored by Redis time, ms). */
  get membersKey(): string {
    return redisKey(this.keyPrefix, 'members');
  }

  /** Live members as last seen, sorted by id. */
  get members(): readonly string[] {
    return this.memberList;
  }

  /** Shards whose lease this process holds, ascending. */
  get owned(): number[] {
    return [...this.leases.keys()].sort((a, b) => a - b);
  }

  /** Shards whose lease could not be deleted when they were released (they expire on their own), ascending. */
  get unreleased(): number[] {
    return [...this.unreleasedLeases].sort((a, b) => a - b);
  }

  /** True while this process surely holds the lease of `shardId` (renewed recently enough). */
  holds(shardId: number): boolean {
    const lease = this.leases.get(shardId);
    return !!lease && this.clock.now() < lease.validUntil;
  }

  /**
   * The lease a session write of `shardId` must be conditional on (see `RedisSessionStoreOptions.fence`), or null
   * when this process does not surely hold it.
   */
  writeFence(shardId: number): SessionWriteFence | null {
    const lease = this.leases.get(shardId);
    if (!lease || this.clock.now() >= lease.validUntil) return null;
    return { key: this.leaseKey(shardId), token: lease.token };
  }

  /** The member that holds a shard's lease now, or null when it is free. */
  async ownerOf(shardId: number): Promise<string | null> {
    return shardLeaseOwner(this.client, this.keyPrefix, shardId);
  }

  /**
   * Joins the members and starts claiming shards. Resolves once the first claims were made (after `joinDelayMs`)
   * and those shards are ready or failed. The cluster must be up.
   */
  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    if (this.cluster.total === 0) throw new Error('ShardOwnership.start() needs a started cluster: call cluster.up() first');
    this.state = 'running';
    this.claimFrom = this.clock.now() + this.joinDelayMs;
    this.tickTimer = this.clock.setInterval(() => void this.tick(), this.renewIntervalMs);
    this.tickTimer.unref();
    const watchEvery = Math.max(20, Math.min(1_000, Math.floor(this.leaseTtlMs / 10)));
    this.watchdogTimer = this.clock.setInterval(() => this.checkDeadlines(), watchEvery);
    this.watchdogTimer.unref();
    this.log(`member ${this.memberId} joining (lease TTL ${this.leaseTtlMs} ms, ${this.cluster.total} shards)`);
    await this.tick();
    if (this.joinDelayMs > 0) await new Promise<void>((resolve) => this.clock.setTimeout(resolve, this.joinDelayMs));
    await this.ticking;
    await this.tick();
    await Promise.allSettled([...this.starts.values()]);
  }

  /**
   * Leaves: stops claiming, closes every shard held (resumably by default, saving its session for the next
   * owner; with `resumable: false` ending it), deletes the leases and the heartbeat, and quits the client when it
   * was created from a `url`.
   */
  async stop(options: { resumable?: boolean } = {}): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopping';
    if (this.tickTimer) this.clock.clearInterval(this.tickTimer);
    if (this.expiryTimer) this.clock.clearTimeout(this.expiryTimer);
    this.tickTimer = this.expiryTimer = null;
    await this.ticking?.catch(() => undefined);
    try {
      if (wasRunning) {
        const resumable = options.resumable ?? true;
        // Keep the leases alive while the shards close (a close can take closeTimeout).
        const keepAlive = this.clock.setInterval(() => void this.renew().catch(() => undefined), this.renewIntervalMs);
        try {
          // Bounded: with Redis unreachable, saving a session can wait for the client's reconnects.
          const releases = Promise.all([...this.leases.values()].map((lease) => this.release(lease, resumable)));
          await withDeadline(releases, this.leaseTtlMs).catch((error: Error) => {
            this.log(`could not hand every shard over: ${error.message}; the leases left expire on their own`);
            for (const lease of [...this.leases.values()]) {
              this.unreleasedLeases.add(lease.shardId);
              this.forget(lease, 'not handed over before the shutdown deadline');
            }
          });
        } finally {
          this.clock.clearInterval(keepAlive);
        }
        await withDeadline(this.client.zrem(this.membersKey, this.memberId), STOP_CALL_TIMEOUT_MS).catch((error: Error) =>
          this.log(`could not leave the members (the heartbeat expires in ${this.leaseTtlMs} ms): ${error.message}`),
        );
        this.log(`member ${this.memberId} left`);
      }
    } finally {
      if (this.watchdogTimer) this.clock.clearInterval(this.watchdogTimer);
      this.watchdogTimer = null;
      this.state = 'stopped';
      this.eventsSubject.complete();
      if (this.ownsClient) await closeRedisClient(this.client);
    }
  }

  // ---- internals ----------------------------------------------------------------------------------

  /** One round: heartbeat, renewals, then balancing. Concurrent callers share the round under way. */
  private tick(): Promise<void> {
    if (this.state !== 'running') return Promise.resolve();
    this.ticking ??= this.round()
      .catch((error: Error) => this.log(`ownership round failed: ${error.message}`))
      .finally(() => {
        this.ticking = null;
      });
    return this.ticking;
  }

  private async round(): Promise<void> {
    const [now, flat, epoch] = await withDeadline(
      HEARTBEAT_SCRIPT.run<[number, string[], string]>(
        this.client,
        [this.membersKey, this.epochKey],
        [this.memberId, this.leaseTtlMs, randomBytes(8).toString('hex')],
      ),
      this.renewIntervalMs,
    );
    if (this.epoch !== null && epoch !== this.epoch) {
      // Redis lost its data (restarted empty): the live holders set their leases and sessions again at their
      // next renewal, within a renewal interval. Claim nothing before a lease TTL has passed.
      this.claimFrom = Math.max(this.claimFrom, this.clock.now() + this.leaseTtlMs);
      this.log(`Redis lost its data (epoch ${this.epoch} is now ${epoch}): re-asserting the leases held; no claim for ${this.leaseTtlMs} ms`);
    }
    this.epoch = epoch;
    const members: string[] = [];
    let nextDeparture = Infinity;
    for (let i = 0; i < flat.length; i += 2) {
      members.push(flat[i]);
      if (flat[i] !== this.memberId) nextDeparture = Math.min(nextDeparture, Number(flat[i + 1]) + this.leaseTtlMs - now);
    }
    // A member that stopped heartbeating leaves when its last heartbeat is a TTL old: look again right then.
    if (nextDeparture < this.renewIntervalMs) this.wakeIn(nextDeparture + 5);
    const sorted = members.sort();
    if (sorted.join('\n') !== this.memberList.join('\n')) {
      this.memberList = sorted;
      this.log(`members: ${sorted.join(', ')}`);
      this.eventsSubject.next({ type: 'members', members: sorted });
    }
    await this.renew();
    if (this.state === 'running' && this.clock.now() >= this.claimFrom) await this.balance(sorted);
  }

  /** Renews every lease held; a lease that no longer holds its token is lost. */
  private async renew(): Promise<void> {
    const held = [...this.leases.values()];
    if (held.length === 0) return;
    const sentAt = this.clock.now();
    const results = await withDeadline(
      RENEW_SCRIPT.run<number[]>(
        this.client,
        held.map((lease) => this.leaseKey(lease.shardId)),
        [this.leaseTtlMs, ...held.map((lease) => lease.token)],
      ),
      this.renewIntervalMs,
    );
    const reasserted: number[] = [];
    held.forEach((lease, i) => {
      if (this.leases.get(lease.shardId) !== lease) return;
      if (results[i] === 1 || results[i] === 2) lease.validUntil = Math.max(lease.validUntil, sentAt + this.leaseTtlMs - this.marginMs);
      else this.lose(lease, 'its lease expired or is held by another process');
      if (results[i] === 2) reasserted.push(lease.shardId);
    });
    if (reasserted.length > 0) {
      // Redis lost them: write the sessions of these shards again, so whoever takes them over resumes.
      this.log(`re-asserted the leases of shards ${reasserted.join(', ')} (Redis had lost them); saving their sessions again`);
      await this.cluster.saveSessions(reasserted);
    }
  }

  /** Moves toward this member's target: releases the excess, or claims free shards in bucket order. */
  private async balance(members: string[]): Promise<void> {
    const index = members.indexOf(this.memberId);
    if (index < 0) return;
    const total = this.cluster.total;
    const target = Math.floor(total / members.length) + (index < total % members.length ? 1 : 0);
    const active = [...this.leases.values()].filter((lease) => !lease.releasing);
    if (active.length > target) {
      // Hand over shards that are not connected first, then the highest ids.
      const shards = this.cluster.shards;
      const rank = (lease: Lease) => (shards.get(lease.shardId)?.state === ShardState.Ready ? 1 : 0);
      const excess = active
        .sort((a, b) => rank(a) - rank(b) || b.shardId - a.shardId)
        .slice(0, active.length - target);
      this.log(`holding ${active.length} shards, target ${target} of ${members.length} members: handing over [${excess.map((l) => l.shardId).join(', ')}]`);
      for (const lease of excess) void this.release(lease, true);
    } else if (active.length < target) {
      await this.claim(target - active.length);
    }
  }

  /** Claims up to `count` free shards, lowest ids first. */
  private async claim(count: number): Promise<void> {
    const candidates = Array.from({ length: this.cluster.total }, (_, id) => id).filter((id) => !this.leases.has(id));
    if (candidates.length === 0) return;
    const current = await withDeadline(this.client.mget(candidates.map((id) => this.leaseKey(id))), this.renewIntervalMs);
    const free = candidates.filter((_, i) => current[i] === null);
    let claimed = 0;
    for (let next = 0; next < free.length && claimed < count && this.state === 'running'; ) {
      const batch = free.slice(next, next + count - claimed);
      next += batch.length;
      const tokens = batch.map(() => `${this.memberId}|${randomBytes(8).toString('hex')}`);
      const sentAt = this.clock.now();
      const pipeline = this.client.pipeline();
      batch.forEach((id, i) => pipeline.set(this.leaseKey(id), tokens[i], 'PX', this.leaseTtlMs, 'NX'));
      const results = (await withDeadline(pipeline.exec(), this.renewIntervalMs)) ?? [];
      batch.forEach((shardId, i) => {
        const [error, reply] = results[i] ?? [null, null];
        if (error || reply !== 'OK') return;
        const lease: Lease = { shardId, token: tokens[i], validUntil: sentAt + this.leaseTtlMs - this.marginMs, releasing: false };
        this.leases.set(shardId, lease);
        claimed++;
        this.startShard(lease);
      });
    }
    if (claimed < count && this.state === 'running') await this.wakeAtNextExpiry(candidates.filter((id) => !this.leases.has(id)));
  }

  /**
   * Still below target: schedules an extra round for when the first lease held elsewhere expires (a dead member's
   * leases all expire about a TTL after its last renewal), so that shards are taken over as soon as they are free.
   */
  private async wakeAtNextExpiry(taken: number[]): Promise<void> {
    if (taken.length === 0 || this.expiryTimer) return;
    const pipeline = this.client.pipeline();
    for (const id of taken) pipeline.pttl(this.leaseKey(id));
    const results = (await withDeadline(pipeline.exec(), this.renewIntervalMs)) ?? [];
    const ttls = results.map(([error, ms]) => (error ? Infinity : Number(ms))).filter((ms) => ms >= 0);
    const first = Math.min(...ttls);
    if (first < this.renewIntervalMs) this.wakeIn(first + 5);
  }

  /** Runs an extra round in `ms` (unless one is already planned). */
  private wakeIn(ms: number): void {
    if (this.expiryTimer || this.state !== 'running') return;
    this.expiryTimer = this.clock.setTimeout(() => {
      this.expiryTimer = null;
      void this.tick();
    }, Math.max(0, ms));
    this.expiryTimer.unref();
  }

  private startShard(lease: Lease): void {
    const shardId = lease.shardId;
    this.log(`claimed shard ${shardId}`);
    this.eventsSubject.next({ type: 'claimed', shardId });
    const started = this.cluster
      .addShard(shardId, { handshakeGuard: (kind) => this.guard(lease, kind) })
      .catch((error: Error) => {
        if (this.leases.get(shardId) === lease) this.log(`shard ${shardId} did not start: ${error.message}`);
      })
      .finally(() => {
        if (this.starts.get(shardId) === started) this.starts.delete(shardId);
      });
    this.starts.set(shardId, started);
  }

  /** The fence: renews the lease with its token right before a handshake; false makes the shard stop. */
  private async guard(lease: Lease, kind: HandshakeKind): Promise<boolean> {
    if (this.leases.get(lease.shardId) === lease && this.state === 'running') {
      const sentAt = this.clock.now();
      try {
        const [ok] = await withDeadline(
          RENEW_SCRIPT.run<number[]>(this.client, [this.leaseKey(lease.shardId)], [this.leaseTtlMs, lease.token]),
          Math.min(this.renewIntervalMs, lease.validUntil - sentAt),
        );
        if ((ok === 1 || ok === 2) && this.leases.get(lease.shardId) === lease) {
          lease.validUntil = Math.max(lease.validUntil, sentAt + this.leaseTtlMs - this.marginMs);
          return true;
        }
      } catch (error) {
        this.log(`shard ${lease.shardId}: could not check the lease before ${kind}: ${(error as Error).message}`);
      }
    }
    if (this.leases.get(lease.shardId) === lease) this.forget(lease, `the lease could not be confirmed before ${kind}`);
    // The shard closes itself on the refusal; then it is taken out of the cluster.
    setImmediate(() => this.dropShard(lease.shardId, lease));
    return false;
  }

  /** Closes every shard whose local deadline has passed without a renewal. */
  private checkDeadlines(): void {
    const now = this.clock.now();
    for (const lease of [...this.leases.values()]) {
      if (now >= lease.validUntil) this.lose(lease, 'its lease could not be renewed in time');
    }
  }

  /** A lease that is (or may be) gone: close the shard without writing its session, which may be someone else's now. */
  private lose(lease: Lease, reason: string): void {
    if (this.leases.get(lease.shardId) !== lease) return;
    this.forget(lease, reason);
    this.dropShard(lease.shardId, lease);
  }

  private forget(lease: Lease, reason: string): void {
    this.leases.delete(lease.shardId);
    this.log(`lost shard ${lease.shardId}: ${reason}`);
    this.eventsSubject.next({ type: 'lost', shardId: lease.shardId, reason });
  }

  private dropShard(shardId: number, lease: Lease): void {
    if (this.leases.has(shardId) && this.leases.get(shardId) !== lease) return;
    if (!this.cluster.has(shardId)) return;
    this.cluster.removeShard(shardId, { resumable: true, updateStore: false }).catch((error: Error) => {
      this.log(`shard ${shardId}: close failed: ${error.message}`);
    });
  }

  /**
   * Gives a shard up on purpose: closes it (resumably: the session is saved and flushed while the lease is still
   * held), then deletes the lease so that another member can claim it and resume.
   */
  private async release(lease: Lease, resumable: boolean): Promise<void> {
    if (lease.releasing) return;
    lease.releasing = true;
    const shardId = lease.shardId;
    let session: ShardSession | null = null;
    try {
      // A shard still being added is refused by its handshake guard once the lease is gone.
      if (this.cluster.has(shardId)) session = await this.cluster.removeShard(shardId, { resumable });
    } catch (error) {
      this.log(`shard ${shardId}: close failed: ${(error as Error).message}`);
    }
    if (this.leases.get(shardId) !== lease) return;
    this.leases.delete(shardId);
    try {
      await withDeadline(RELEASE_SCRIPT.run(this.client, [this.leaseKey(shardId)], [lease.token]), STOP_CALL_TIMEOUT_MS);
    } catch (error) {
      this.unreleasedLeases.add(shardId);
      this.log(`shard ${shardId}: could not delete the lease (it expires in ${this.leaseTtlMs} ms): ${(error as Error).message}`);
    }
    this.log(`released shard ${shardId}${session ? ` (session saved at sequence ${session.sequence})` : ''}`);
    if (this.state !== 'stopped') this.eventsSubject.next({ type: 'released', shardId });
  }
}

/**
 * An {@link ISessionStore} that reads through to `store` but writes (and deletes) only the sessions `allowed` says
 * this process may write: with `ShardOwnership.holds`, a process that lost a lease cannot overwrite the session
 * its new owner saves.
 */
export class LeaseFencedSessionStore implements ISessionStore {
  constructor(
    private readonly store: ISessionStore,
    private readonly allowed: (shardId: number) => boolean,
  ) {}

  get(shardId: number): Promise<ShardSession | null> {
    return this.store.get(shardId);
  }

  async set(shardId: number, session: ShardSession): Promise<void> {
    if (this.allowed(shardId)) await this.store.set(shardId, session);
  }

  async delete(shardId: number): Promise<void> {
    if (this.allowed(shardId)) await this.store.delete(shardId);
  }

  async flush(): Promise<void> {
    await this.store.flush?.();
  }
}

/** Longest wait for one Redis call on the way out (deleting a lease, leaving the members), ms. */
const STOP_CALL_TIMEOUT_MS = 500;

