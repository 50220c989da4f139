import { duplicateRedisClient } from './duplicate-redis-client';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { closeRedisClient } from './create-redis-client';
import { decodeDispatchEntry, dispatchStreamKeys, waitForShardCount, type PublishedDispatch } from './dispatch-stream-entry';
import { RedisEntryDeduplicator } from './redis-entry-deduplicator';
import { redisKeyPrefix, type RedisClient } from './redis-options.interface';
import { readStreamGroupStats, type StreamGroupStats } from './stream-group-stats';
import { WorkerGroupRegistration } from './worker-group-registry';

/** What a worker knows about one delivery besides the dispatch. */
export interface StreamDelivery {
  /** The stream entry id (`<ms>-<n>`). */
  entryId: string;
  /** `sessionId:sequence`, the same for every publication of one event (`<entry id>:<index in the entry>` for an event without a session). */
  idempotencyKey: string;
}

/** Options of {@link RedisStreamConsumer}. */
export interface RedisStreamConsumerOptions {
  /** The Redis client (left open; a second connection for blocking reads is made from it and closed with the consumer). */
  client: RedisClient;
  /** The bot's key prefix (the gateway processes' `keyPrefix`). @defaultValue `'ndg'` */
  keyPrefix?: string;
  /** The worker group: each group gets every event it wants once; its workers share them. */
  group: string;
  /** This worker's name in the group; give a stable one to resume its own pending entries at once after a restart. @defaultValue `<hostname>-<pid>-<random>` */
  consumer?: string;
  /** The event names the group's handlers listen to (`'*'`: every event). */
  events: readonly string[];
  /** Runs the handlers of one event; an entry is acknowledged once this settled (resolved or rejected) for each of its events. */
  handle: (event: PublishedDispatch, delivery: StreamDelivery) => Promise<unknown>;
  /** Entries pending this long with a worker (dead, or slow) are claimed by another worker of the group, ms. @defaultValue `30000` */
  claimIdleMs?: number;
  /**
   * Entries read per call, at most (an entry holds the events of one publish for one shard: fewer are read when they
   * are large, so that what is read fits in `maxInFlight`). @defaultValue `200`
   */
  batchSize?: number;
  /** Longest wait of one blocking read, ms. @defaultValue `2000` */
  blockMs?: number;
  /** Events whose handlers may be running at once; reading pauses at the limit (an entry larger than what is left of it is read whole). @defaultValue `1000` */
  maxInFlight?: number;
  /** How long the group stays registered (wanted by the gateways) after its last worker stopped renewing, ms. @defaultValue `30000` */
  groupTtlMs?: number;
  /** Exactly-once claims per event (see `RedisEntryDeduplicator`); `ttlMs` how long a claim is kept. @defaultValue `false` */
  exactlyOnce?: boolean | { ttlMs?: number };
  /** Longest wait for handlers still running at `stop()`, ms. @defaultValue `10000` */
  stopTimeoutMs?: number;
  /** Receives debug lines. */
  log?: (message: string) => void;
  /** Receives warnings: malformed entries (each once), Redis failures (once until it recovers). */
  warn?: (message: string) => void;
}

/** Counters of a {@link RedisStreamConsumer}. */
export interface StreamConsumerStats {
  /** Events whose handlers were run (and settled). */
  handled: number;
  /** Events acknowledged (with their entry: the events of one publish for one shard). */
  acknowledged: number;
  /** Events that were not a dispatch, and entries that could not be read at all (skipped; the entry acknowledged). */
  malformed: number;
  /** Events skipped because the group handled them already (exactly-once mode). */
  duplicates: number;
  /** Events taken over (in their entries) from idle workers of the group (XAUTOCLAIM). */
  claimed: number;
  /** Events whose handlers are running. */
  inFlight: number;
}

interface Incoming {
  key: string;
  id: string;
  fields: unknown;
}

/** An entry being handled: acknowledged when its last event settles. */
interface EntryInFlight {
  key: string;
  id: string;
  /** Its events (counted as acknowledged with it). */
  events: number;
  /** Its events still being handled. */
  remaining: number;
}

/**
 * The worker side of `delivery: 'redis-streams'`, without Nest: reads the shard streams as one consumer of a
 * consumer group (XREADGROUP), runs `handle` per event (started in stream order), acknowledges each entry once the
 * handling of all its events settled (acknowledgements of one event-loop turn in one pipeline), and takes over the
 * entries other workers of the group left pending for `claimIdleMs` (XAUTOCLAIM). Events that are not dispatches
 * (and entries that cannot be read) are logged, counted and skipped; the rest of their entry is handled.
 *
 * At start it waits for a gateway process to write the shard count, creates the group on every shard stream (at
 * the stream's end when new, so it resumes where it acknowledged when it exists), then registers the group's event
 * names; it first handles its own pending entries (a restart with the same `consumer`), then new ones.
 */
export class RedisStreamConsumer {
  /** This worker's name in the group. */
  readonly consumer: string;
  readonly group: string;
  private readonly client: RedisClient;
  private readonly prefix: string;
  private readonly wantsAll: boolean;
  private readonly wanted: Set<string>;
  private readonly claimIdleMs: number;
  private readonly batchSize: number;
  private readonly blockMs: number;
  private readonly maxInFlight: number;
  private readonly groupTtlMs: number;
  private readonly stopTimeoutMs: number;
  private readonly log: (message: string) => void;
  private readonly warn: (message: string) => void;
  private readonly deduplicator: RedisEntryDeduplicator | null;
  private reader: RedisClient | null = null;
  private registration: WorkerGroupRegistration | null = null;
  private keys: string[] = [];
  private shardCount = 0;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;
  /** The claim sweep running, if any (awaited by `stop()`). */
  private sweepRun: Promise<void> | null = null;
  /** Entries being handled, by `<stream key> <entry id>` (entry ids are unique per stream only). */
  private readonly inFlight = new Map<string, EntryInFlight>();
  /** Entries settled (or skipped) whose acknowledgement has not gone out yet: not handled again meanwhile. */
  private readonly acking = new Set<string>();
  private inFlightEvents = 0;
  /** Events per entry, averaged over recent reads: how many entries fit in `maxInFlight`. */
  private eventsPerEntry = 1;
  private readonly settledWaiters: (() => void)[] = [];
  private acks: { key: string; id: string; events: number }[] = [];
  /** Idempotency keys of events handled since the last flush (exactly-once mode): marked done with the acknowledgements. */
  private done: string[] = [];
  private ackArmed = false;
  private failing = false;
  private dedupeFailing = false;
  private sweepFailing = false;
  private ackFailing = false;
  private readonly counters = { handled: 0, acknowledged: 0, malformed: 0, duplicates: 0, claimed: 0 };

  constructor(private readonly options: RedisStreamConsumerOptions) {
    this.client = options.client;
    this.prefix = redisKeyPrefix(options);
    this.group = options.group;
    this.consumer = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.wantsAll = options.events.includes('*');
    this.wanted = new Set(options.events);
    this.claimIdleMs = options.claimIdleMs ?? 30_000;
    this.batchSize = options.batchSize ?? 200;
    this.blockMs = options.blockMs ?? 2_000;
    this.maxInFlight = options.maxInFlight ?? 1_000;
    this.groupTtlMs = options.groupTtlMs ?? 30_000;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.log = options.log ?? (() => undefined);
    this.warn = options.warn ?? this.log;
    const exactlyOnce = options.exactlyOnce;
    this.deduplicator = exactlyOnce
      ? new RedisEntryDeduplicator(this.client, this.prefix, this.group, (exactlyOnce === true ? undefined : exactlyOnce.ttlMs) ?? 600_000)
      : null;
  }

  /** The bot's shard count as the gateway processes wrote it (0 before `start()` has read it). */
  get shards(): number {
    return this.shardCount;
  }

  /** Counters since start. */
  stats(): StreamConsumerStats {
    return { ...this.counters, inFlight: this.inFlightEvents };
  }

  /** The group's lag, pending entries and cap drops on every shard stream, as Redis reports them now. */
  groupStats(): Promise<StreamGroupStats[]> {
    return readStreamGroupStats(this.client, this.prefix, Array.from({ length: this.shardCount }, (_, id) => id), this.group);
  }

  /**
   * Joins the group and starts consuming. Resolves once the group exists on every shard stream and is registered
   * (so every event published from then on reaches it); waits for a gateway process to publish the shard count.
   */
  async start(): Promise<void> {
    this.shardCount = await waitForShardCount(this.client, this.prefix, () => this.stopped, this.log);
    this.keys = Array.from({ length: this.shardCount }, (_, id) => dispatchStreamKeys.stream(this.prefix, id));
    await this.createGroups('$');
    if (this.stopped) return;
    this.registration = new WorkerGroupRegistration(this.client, this.prefix, this.group, [...this.wanted], this.groupTtlMs, this.warn);
    await this.registration.start();
    this.reader = duplicateRedisClient(this.client);
    this.reader.on('error', (error: Error) => this.log(`stream reader: ${error.message}`));
    this.loop = this.run();
    const sweepMs = Math.max(50, Math.min(1_000, Math.floor(this.claimIdleMs / 4)));
    this.sweeper = setInterval(() => {
      if (!this.sweeping) this.sweepRun = this.sweep();
    }, sweepMs);
    this.sweeper.unref();
    this.log(`worker ${this.consumer} of group ${this.group} consumes ${this.shardCount} shard streams`);
  }

  /**
   * Stops reading, waits (at most `stopTimeoutMs`) for the handlers running, acknowledges what settled, and closes
   * the reading connection. Entries read and not handled stay pending: another worker claims them.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.registration?.stop();
    // A blocking read ends with its connection; what it had been given stays pending for the group.
    this.reader?.disconnect();
    // A read loop waiting for room under maxInFlight ends now.
    this.wakeWaiters();
    await this.loop?.catch(() => undefined);
    await this.sweepRun;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.wakeWaiters();
    }, this.stopTimeoutMs);
    while (this.inFlight.size > 0 && !timedOut) await this.nextSettle();
    clearTimeout(timer);
    await this.flushAcks();
    if (this.reader) await closeRedisClient(this.reader);
    this.reader = null;
  }

  private async run(): Promise<void> {
    await this.drainOwnPending();
    let backoff = 0;
    const ids = this.keys.map(() => '>');
    while (!this.stopped) {
      if (this.inFlightEvents >= this.maxInFlight) {
        await this.nextSettle();
        continue;
      }
      let reply: unknown;
      try {
        // As Buffers: the payloads are read by their byte lengths.
        reply = await (this.reader as RedisClient).callBuffer(
          'XREADGROUP', 'GROUP', this.group, this.consumer, 'COUNT', this.readCount(), 'BLOCK', this.blockMs, 'STREAMS', ...this.keys, ...ids,
        );
        backoff = 0;
        this.failing = false;
      } catch (error) {
        if (this.stopped) return;
        if (!this.failing) this.warn(`group ${this.group}: reading the streams failed (${(error as Error).message}); retrying`);
        this.failing = true;
        backoff = Math.min(5_000, Math.max(100, backoff * 2));
        await delay(backoff);
        // Redis lost the group (it restarted empty, or somebody deleted the group): join again, from the first entry
        // the streams hold now (everything published since the loss; at worst entries handled before, never a loss).
        if (String((error as Error).message).startsWith('NOGROUP')) {
          await this.createGroups('0').catch((failure: Error) => this.log(`group ${this.group}: joining the streams again failed (${failure.message})`));
        }
        continue;
      }
      await this.process(flattenRead(reply));
    }
  }

  /** Resolves at the next event that settles (or when `stop()` gives up waiting). */
  private nextSettle(): Promise<void> {
    return new Promise<void>((resolve) => this.settledWaiters.push(resolve));
  }

  private wakeWaiters(): void {
    for (const resolve of this.settledWaiters.splice(0)) resolve();
  }

  /** Entries to read now: as many as fit in `maxInFlight` at the recent events per entry, 1 to `batchSize`. */
  private readCount(): number {
    return Math.max(1, Math.min(this.batchSize, Math.floor((this.maxInFlight - this.inFlightEvents) / this.eventsPerEntry)));
  }

  /** Creates the group on every shard stream (and the streams) where it does not exist, reading from `from`. */
  private async createGroups(from: '$' | '0'): Promise<void> {
    for (const key of this.keys) {
      try {
        await this.client.xgroup('CREATE', key, this.group, from, 'MKSTREAM');
      } catch (error) {
        if (!String((error as Error).message).startsWith('BUSYGROUP')) throw error;
      }
    }
  }

  /** Handles the entries this consumer had read and not acknowledged before a restart (same `consumer` name). */
  private async drainOwnPending(): Promise<void> {
    for (const key of this.keys) {
      let after = '0';
      for (let page = 0; page < 10_000 && !this.stopped; page++) {
        if (this.inFlightEvents >= this.maxInFlight) {
          await this.nextSettle();
          continue;
        }
        let reply: unknown;
        try {
          reply = await this.client.callBuffer('XREADGROUP', 'GROUP', this.group, this.consumer, 'COUNT', this.readCount(), 'STREAMS', key, after);
        } catch (error) {
          // Left to the group: another worker claims them after claimIdleMs.
          this.warn(`group ${this.group}: reading own pending entries failed (${(error as Error).message})`);
          return;
        }
        const incoming = flattenRead(reply);
        if (incoming.length === 0) break;
        after = incoming[incoming.length - 1].id;
        await this.process(incoming);
      }
    }
  }

  /** Takes over entries other workers left pending for `claimIdleMs` (as many as fit in `maxInFlight`; the next sweep goes on). */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    try {
      for (const key of this.keys) {
        let cursor = '0-0';
        for (let page = 0; page < 100 && !this.stopped && this.inFlightEvents < this.maxInFlight; page++) {
          const reply = (await this.client.callBuffer('XAUTOCLAIM', key, this.group, this.consumer, this.claimIdleMs, cursor, 'COUNT', this.readCount())) as unknown[];
          // Stopped meanwhile: what was claimed stays pending, for another worker.
          if (this.stopped) return;
          const entries = Array.isArray(reply?.[1]) ? (reply[1] as unknown[]) : [];
          const incoming: Incoming[] = [];
          for (const entry of entries) {
            if (!Array.isArray(entry)) continue;
            const id = String(entry[0]);
            if (this.inFlight.has(`${key} ${id}`) || this.acking.has(`${key} ${id}`)) continue;
            incoming.push({ key, id, fields: entry[1] });
          }
          if (incoming.length > 0) this.log(`group ${this.group}: took over ${incoming.length} idle entries of ${key}`);
          await this.process(incoming, true);
          cursor = String(reply?.[0] ?? '0-0');
          if (cursor === '0-0') break;
        }
      }
      this.sweepFailing = false;
    } catch (error) {
      if (!this.stopped && !this.failing && !this.sweepFailing) this.warn(`group ${this.group}: claiming idle entries failed (${(error as Error).message}); retrying`);
      this.sweepFailing = true;
    } finally {
      this.sweeping = false;
    }
  }

  /** Handles entries read (`claimed`: taken over from idle workers); unreadable entries and events are counted as one event. */
  private async process(incoming: Incoming[], claimed = false): Promise<void> {
    const deliveries: { entry: EntryInFlight; event: PublishedDispatch; delivery: StreamDelivery }[] = [];
    for (const { key, id, fields } of incoming) {
      const inFlightId = `${key} ${id}`;
      // Being handled here already, or settled and being acknowledged (claimed back from this consumer meanwhile).
      if (this.inFlight.has(inFlightId) || this.acking.has(inFlightId)) continue;
      if (fields === null || fields === undefined) {
        // Trimmed or deleted while pending: nothing to handle.
        this.ack(key, id, 0);
        continue;
      }
      const decoded = decodeDispatchEntry(fields);
      if (claimed) this.counters.claimed += decoded.ok ? decoded.events.length : 1;
      if (!decoded.ok) {
        this.counters.malformed++;
        this.warn(`group ${this.group}: entry ${id} of ${key} is not a dispatch entry (${decoded.problem}); skipped`);
        this.ack(key, id, 1);
        continue;
      }
      const entry: EntryInFlight = { key, id, events: decoded.events.length, remaining: 0 };
      this.eventsPerEntry = (this.eventsPerEntry + entry.events) / 2;
      decoded.events.forEach((item, index) => {
        if (!item.ok) {
          this.counters.malformed++;
          this.warn(`group ${this.group}: event ${index} of entry ${id} of ${key} is not a dispatch (${item.problem}); skipped`);
          return;
        }
        const event = item.event;
        if (!this.wantsAll && !this.wanted.has(event.t)) return;
        const idempotencyKey = event.sessionId ? `${event.sessionId}:${event.s}` : `${id}:${index}`;
        entry.remaining++;
        deliveries.push({ entry, event, delivery: { entryId: id, idempotencyKey } });
      });
      if (entry.remaining === 0) this.ack(key, id, entry.events);
      else this.inFlight.set(inFlightId, entry);
    }
    let claims: boolean[] | null = null;
    if (this.deduplicator && deliveries.length > 0) {
      try {
        claims = await this.deduplicator.claim(deliveries.map(({ delivery }) => delivery));
        this.dedupeFailing = false;
      } catch (error) {
        if (!this.dedupeFailing) this.warn(`group ${this.group}: exactly-once claims failed (${(error as Error).message}); events are handled without them and may repeat`);
        this.dedupeFailing = true;
      }
    }
    deliveries.forEach(({ entry, event, delivery }, i) => {
      if (claims && !claims[i]) {
        this.counters.duplicates++;
        this.settleEvent(entry, null);
        return;
      }
      this.inFlightEvents++;
      const settle = () => {
        this.inFlightEvents--;
        this.counters.handled++;
        this.settleEvent(entry, this.deduplicator ? delivery.idempotencyKey : null);
      };
      let result: Promise<unknown>;
      try {
        result = this.options.handle(event, delivery);
      } catch (error) {
        result = Promise.reject(error);
      }
      result.then(settle, (error: unknown) => {
        this.log(`group ${this.group}: handling ${event.t} (entry ${entry.id}) failed: ${(error as Error)?.message ?? String(error)}`);
        settle();
      });
    });
  }

  /** One event of `entry` settled (`done`: its idempotency key, marked done in exactly-once mode); the last acknowledges the entry. */
  private settleEvent(entry: EntryInFlight, done: string | null): void {
    if (done !== null) this.done.push(done);
    if (--entry.remaining === 0) {
      this.inFlight.delete(`${entry.key} ${entry.id}`);
      this.ack(entry.key, entry.id, entry.events);
    } else if (done !== null) {
      this.armAcks();
    }
    this.wakeWaiters();
  }

  private ack(key: string, id: string, events: number): void {
    this.acks.push({ key, id, events });
    this.acking.add(`${key} ${id}`);
    this.armAcks();
  }

  private armAcks(): void {
    if (this.ackArmed) return;
    this.ackArmed = true;
    setImmediate(() => void this.flushAcks());
  }

  private async flushAcks(): Promise<void> {
    this.ackArmed = false;
    if (this.acks.length === 0 && this.done.length === 0) return;
    const acks = this.acks;
    const done = this.done;
    this.acks = [];
    this.done = [];
    const pipeline = this.client.pipeline();
    for (const idempotencyKey of done) this.deduplicator?.markDone(pipeline, idempotencyKey);
    const byKey = new Map<string, string[]>();
    for (const { key, id } of acks) {
      const ids = byKey.get(key);
      if (ids) ids.push(id);
      else byKey.set(key, [id]);
    }
    for (const [key, ids] of byKey) pipeline.xack(key, this.group, ...ids);
    try {
      const results = (await pipeline.exec()) ?? [];
      const error = results.find(([e]) => e)?.[0];
      if (error) throw error;
      for (const { events } of acks) this.counters.acknowledged += events;
      this.ackFailing = false;
    } catch (error) {
      // Unacknowledged entries stay pending: they are claimed after claimIdleMs (by this worker or another) and handled again.
      if (!this.failing && !this.ackFailing) this.warn(`group ${this.group}: acknowledging ${acks.length} entries failed (${(error as Error).message}); they will be handled again`);
      this.ackFailing = true;
    } finally {
      // Acknowledged, or left pending to be claimed and handled again.
      for (const { key, id } of acks) this.acking.delete(`${key} ${id}`);
    }
  }
}

/**
 * XREADGROUP's reply as a flat list of entries. ioredis 5 returns `[[key, entries], ...]`; ioredis 6 returns the
 * server's map flattened, `[key, entries, key, entries, ...]`.
 */
function flattenRead(reply: unknown): Incoming[] {
  const incoming: Incoming[] = [];
  if (!Array.isArray(reply)) return incoming;
  const pairs = reply.length > 0 && !Array.isArray(reply[0]);
  for (let i = 0; i < reply.length; i += pairs ? 2 : 1) {
    const key: unknown = pairs ? reply[i] : Array.isArray(reply[i]) ? reply[i][0] : undefined;
    const entries: unknown = pairs ? reply[i + 1] : Array.isArray(reply[i]) ? reply[i][1] : undefined;
    if (key === undefined || !Array.isArray(entries)) continue;
    for (const entry of entries as unknown[]) {
      if (Array.isArray(entry)) incoming.push({ key: String(key), id: String(entry[0]), fields: entry[1] });
    }
  }
  return incoming;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
