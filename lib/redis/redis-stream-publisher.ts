import type { Subscription } from 'rxjs';
import type { Cluster } from '../core/cluster/cluster';
import type { IDispatchDelivery } from '../core/interfaces/dispatch-delivery.interface';
import type { ForwardedDispatch } from '../core/interfaces/forwarded-dispatch.interface';
import type { GatewayDispatch } from '../core/interfaces/gateway-dispatch.interface';
import type { IHandlingTracker } from '../core/interfaces/handling-tracker.interface';
import type { IStreamDeliveryStats, StreamDeliveryReport } from '../core/interfaces/stream-delivery-stats.interface';
import { dataPayload, dispatchStreamKeys, encodeDispatchEntry, preciseNow, type EntryEvent } from './dispatch-stream-entry';
import { redisKeyPrefix, type RedisClient } from './redis-options.interface';
import { RedisScript } from './redis-script';
import { readStreamGroupStats, type StreamGroupStats } from './stream-group-stats';
import { readWantedEvents } from './worker-group-registry';

/** Options of {@link RedisStreamPublisher}. */
export interface RedisStreamPublisherOptions {
  /** The Redis client (left open by the publisher). */
  client: RedisClient;
  /** The bot's key prefix. @defaultValue `'ndg'` */
  keyPrefix?: string;
  /**
   * Entries kept per shard stream, roughly (`XADD ... MAXLEN ~`): older ones are trimmed. An entry holds the events of
   * one publish for its shard (one event when events are rare, up to 1,000 under load). @defaultValue `100000`
   */
  maxLen?: number;
  /**
   * Events held in memory while a publish is in flight (Redis slow or unreachable). Beyond it, new events are
   * dropped, counted in `droppedByBuffer` and reported (WARN) once per episode. @defaultValue `10000`
   */
  maxBuffered?: number;
  /**
   * Events buffered at which the shards' reading pauses (backpressure, as Redis answers more slowly than events
   * arrive) until the buffer is down to half of it; a publish that fails resumes them (the bound of `maxBuffered`
   * then applies). 0: never pause. @defaultValue half of `maxBuffered`
   */
  pauseAt?: number;
  /** How often the live worker groups and their event names are read again, ms. @defaultValue `1000` */
  groupRefreshMs?: number;
  /** How often the groups' lag and what the cap dropped are read, ms. @defaultValue `5000` */
  statsIntervalMs?: number;
  /** Receives debug lines. */
  log?: (message: string) => void;
  /** Receives warnings (cap drops, buffer drops, Redis failures). */
  warn?: (message: string) => void;
}

/** Counters of a {@link RedisStreamPublisher}. */
export interface StreamPublisherStats {
  /** Events written to the streams. */
  published: number;
  /** Stream entries written (each holds the events of one publish for one shard, up to `STREAM_ENTRY_MAX_BYTES` of payloads). */
  entries: number;
  /** Events dropped because the in-memory batch was full. */
  droppedByBuffer: number;
  /** Events skipped because their data could not be written as JSON (nested too deep for `JSON.stringify`). */
  unencodable: number;
  /** Events waiting for the next (or the in-flight) publish. */
  buffered: number;
  /** Live worker groups, as last read. */
  groups: string[];
  /** Per group and owned shard, as last read (every `statsIntervalMs`). */
  streams: StreamGroupStats[];
}

/**
 * The gateway side of `delivery: 'redis-streams'`: publishes the dispatches some live worker group wants to one
 * stream per shard (`{<keyPrefix>}:dispatch:<shard id>`), after this process's own handlers. The events of one
 * event-loop turn (up to 1,000) go in one script call, one entry per shard holding its events in sequence order
 * (`XADD ... MAXLEN ~ maxLen`, see `encodeDispatchEntry`), one call in flight at a time; what arrives meanwhile waits
 * in a batch. At `pauseAt` waiting events the shard stops reading its socket until
 * half are published (backpressure: Redis slower than the events loses none of them); when Redis fails, reading goes
 * on and the batch holds at most `maxBuffered` events (beyond it, events are dropped and counted).
 *
 * The wanted event names are the union of what the live groups registered (read every `groupRefreshMs`); they are
 * added to the cluster's dispatch filter as forwarded events: a shard passes their payload text on without parsing
 * it as the event's payload and skips the rest; an event this process's own handlers want too is decoded once and
 * its data written as JSON. As the cluster's handling
 * tracker, it keeps saved sequences below the oldest event not yet published: a process killed before publishing
 * leaves those events to the shard's next owner, which resumes and publishes them.
 */
export class RedisStreamPublisher implements IDispatchDelivery, IStreamDeliveryStats {
  private readonly client: RedisClient;
  private readonly prefix: string;
  private readonly maxLen: number;
  private readonly maxBuffered: number;
  private readonly groupRefreshMs: number;
  private readonly statsIntervalMs: number;
  private readonly log: (message: string) => void;
  private readonly warn: (message: string) => void;
  private cluster: Cluster | null = null;
  private handling: IHandlingTracker | null = null;
  private subscriptions: Subscription[] = [];
  private wanted = new Set<string>();
  private wantAll = false;
  private groups: string[] = [];
  private readonly pauseAt: number;
  private batch: PendingEvent[] = [];
  /** Shards whose reading this publisher paused. */
  private readonly paused = new Set<number>();
  private armed = false;
  private flushing: Promise<void> | null = null;
  /** Per shard, the sequences buffered or in flight, in arrival order. */
  private readonly unpublished = new Map<number, SequenceQueue>();
  private timers: NodeJS.Timeout[] = [];
  private published = 0;
  private entries = 0;
  private droppedByBuffer = 0;
  private unencodable = 0;
  private dropping = false;
  private failing = false;
  private lastStats: StreamGroupStats[] = [];
  /** Per `group:shard`, what the cap had dropped at the last stats read. */
  private readonly reportedDrops = new Map<string, number>();

  constructor(options: RedisStreamPublisherOptions) {
    this.client = options.client;
    this.prefix = redisKeyPrefix(options);
    this.maxLen = positiveInteger('streams.maxLen', options.maxLen ?? 100_000);
    this.maxBuffered = positiveInteger('streams.maxBuffered', options.maxBuffered ?? 10_000);
    const pauseAt = options.pauseAt ?? Math.max(1, Math.floor(this.maxBuffered / 2));
    if (!Number.isInteger(pauseAt) || pauseAt < 0) throw new Error(`streams.pauseAt must be an integer >= 0, got ${String(pauseAt)}`);
    this.pauseAt = pauseAt;
    this.groupRefreshMs = positiveInteger('streams.groupRefreshMs', options.groupRefreshMs ?? 1_000);
    this.statsIntervalMs = positiveInteger('streams.statsIntervalMs', options.statsIntervalMs ?? 5_000);
    this.log = options.log ?? (() => undefined);
    this.warn = options.warn ?? this.log;
  }

  /** The event names published now (`'*'` first when some group wants every event). */
  get wantedEvents(): string[] {
    return [...(this.wantAll ? ['*'] : []), ...[...this.wanted].sort()];
  }

  attach(cluster: Cluster, handling: IHandlingTracker | null): void {
    this.cluster = cluster;
    this.handling = handling;
    cluster.trackHandling(this);
    this.subscriptions = [cluster.dispatch$.subscribe((event) => this.push(event)), cluster.forwarded$.subscribe((event) => this.pushForwarded(event))];
    const refresh = setInterval(() => void this.refresh().catch((error: Error) => this.reportFailure(error)), this.groupRefreshMs);
    const stats = setInterval(() => void this.readStats().catch((error: Error) => this.reportFailure(error)), this.statsIntervalMs);
    refresh.unref();
    stats.unref();
    this.timers = [refresh, stats];
    void this.refresh().catch((error: Error) => this.reportFailure(error));
  }

  /**
   * Reads the live worker groups and what they want now (and writes the bot's shard count once the cluster knows
   * it). Called every `groupRefreshMs`; the module also awaits it before claiming shards.
   */
  async refresh(): Promise<void> {
    // Written at every refresh, not once: a Redis that restarted empty has it again within a refresh.
    const total = this.cluster?.total ?? 0;
    if (total > 0) await this.client.set(dispatchStreamKeys.shardCount(this.prefix), String(total));
    const wanted = await readWantedEvents(this.client, this.prefix);
    const before = `${this.groups.join(',')} ${this.wantedEvents.join(',')}`;
    this.wanted = wanted.events;
    this.wantAll = wanted.all;
    this.groups = wanted.groups;
    const filter = this.cluster?.dispatchFilter;
    if (wanted.all) filter?.forwardAll();
    else if (wanted.events.size > 0) filter?.forward(...wanted.events);
    const events = this.wantedEvents.join(', ');
    if (`${this.groups.join(',')} ${this.wantedEvents.join(',')}` !== before) {
      this.log(`worker groups ${wanted.groups.join(', ') || '(none)'} want: ${events || 'nothing'}`);
    }
    this.failing = false;
  }

  async detach(): Promise<void> {
    for (const subscription of this.subscriptions) subscription.unsubscribe();
    this.subscriptions = [];
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    // What is buffered is published before the connection closes (while Redis answers; bounded by maxBuffered).
    await this.flushing;
    for (let left = this.batch.length; left > 0 && !this.failing; left -= PUBLISH_EVENTS) await this.flush();
    this.resumeShards();
    this.cluster = null;
  }

  oldestUnsettled(shardId: number): number | null {
    const handled = this.handling?.oldestUnsettled(shardId) ?? null;
    const mine = this.unpublished.get(shardId)?.first() ?? null;
    if (mine === null) return handled;
    return handled === null ? mine : Math.min(handled, mine);
  }

  /** Counters and the last read lag per group and shard. */
  stats(): StreamPublisherStats {
    return {
      published: this.published,
      entries: this.entries,
      droppedByBuffer: this.droppedByBuffer,
      unencodable: this.unencodable,
      buffered: this.batch.length,
      groups: [...this.groups],
      streams: [...this.lastStats],
    };
  }

  async deliveryReport(): Promise<StreamDeliveryReport> {
    const groups = await this.readStats();
    const { published, droppedByBuffer, unencodable, buffered } = this.stats();
    return { role: 'gateway', counters: { published, droppedByBuffer, unencodable, buffered }, groups };
  }

  /** Reads the lag and cap drops of every group on the streams of the shards owned here; WARNs about new cap drops. */
  async readStats(): Promise<StreamGroupStats[]> {
    const shardIds = this.cluster?.ownedShards ?? [];
    const stats = await readStreamGroupStats(this.client, this.prefix, shardIds);
    for (const entry of stats) {
      const key = `${entry.group}:${entry.shardId}`;
      const before = this.reportedDrops.get(key) ?? 0;
      if (entry.droppedByCap > before) {
        this.warn(
          `worker group ${entry.group}: ${entry.droppedByCap - before} entries of shard ${entry.shardId} were trimmed by the stream cap (maxLen ${this.maxLen}) before the group read them (${entry.droppedByCap} in all)`,
        );
      }
      this.reportedDrops.set(key, entry.droppedByCap);
    }
    this.lastStats = stats;
    return stats;
  }

  /** A decoded event: published with its data as JSON, when some group wants it. */
  private push(event: GatewayDispatch): void {
    if (!this.wantAll && !this.wanted.has(event.t)) return;
    if (!this.hasRoom()) return;
    let payload: Buffer;
    try {
      payload = dataPayload(event.d);
    } catch (error) {
      // Data JSON.parse accepted but JSON.stringify cannot write (nested past its stack): skipped, counted, reported.
      if (this.unencodable++ === 0) this.warn(`stream publishing skipped ${event.t} #${event.s} of shard ${event.shardId}: its data cannot be written as JSON (${(error as Error)?.message ?? String(error)}); later ones are counted (unencodable)`);
      return;
    }
    this.enqueue({ shardId: event.shardId, t: event.t, s: event.s, sessionId: event.sessionId, receivedAt: preciseNow(), payload });
  }

  /** An event the shard forwarded undecoded: published as the payload text it is. */
  private pushForwarded(event: ForwardedDispatch): void {
    if (!this.wantAll && !this.wanted.has(event.t)) return;
    if (!this.hasRoom()) return;
    this.enqueue({ shardId: event.shardId, t: event.t, s: event.s, sessionId: event.sessionId, receivedAt: preciseNow(), payload: event.frame });
  }

  /** False (the event dropped, counted, reported once per episode) when `maxBuffered` events wait already. */
  private hasRoom(): boolean {
    if (this.batch.length < this.maxBuffered) return true;
    this.droppedByBuffer++;
    if (!this.dropping) {
      this.warn(`stream publishing is behind: ${this.maxBuffered} events are waiting for Redis; newer events are dropped (and counted) until it catches up`);
    }
    this.dropping = true;
    return false;
  }

  private enqueue(event: PendingEvent): void {
    const { shardId, s } = event;
    this.batch.push(event);
    let queue = this.unpublished.get(shardId);
    if (!queue) this.unpublished.set(shardId, (queue = new SequenceQueue()));
    queue.push(s);
    if (this.pauseAt > 0 && this.batch.length >= this.pauseAt && !this.failing && !this.paused.has(shardId)) {
      // Redis answers more slowly than events arrive: the shard stops reading until the batch is down to half.
      this.paused.add(shardId);
      this.cluster?.pause(shardId, 'stream-publisher');
    }
    if (!this.armed && !this.flushing) {
      this.armed = true;
      setImmediate(() => {
        this.armed = false;
        void this.flush();
      });
    }
  }

  private flush(): Promise<void> {
    if (this.flushing || this.batch.length === 0) return this.flushing ?? Promise.resolve();
    // At most PUBLISH_EVENTS per publish: the connection is shared (leases, sessions), which wait behind it.
    const batch = this.batch.length <= PUBLISH_EVENTS ? this.batch : this.batch.slice(0, PUBLISH_EVENTS);
    this.batch = batch === this.batch ? [] : this.batch.slice(PUBLISH_EVENTS);
    const run = async () => {
      let written = false;
      try {
        // One entry per shard, its events in arrival (sequence) order.
        const byShard = new Map<number, PendingEvent[]>();
        for (const event of batch) {
          const events = byShard.get(event.shardId);
          if (events) events.push(event);
          else byShard.set(event.shardId, [event]);
        }
        const keys: string[] = [];
        const args: (string | number | Buffer)[] = [this.maxLen];
        let entries = 0;
        for (const [shardId, events] of byShard) {
          const index = keys.push(dispatchStreamKeys.stream(this.prefix, shardId));
          for (const part of byEntryBytes(events)) {
            const fields = encodeDispatchEntry(shardId, part);
            args.push(index, fields.length, ...fields);
            entries++;
          }
        }
        await PUBLISH_SCRIPT.run(this.client, keys, args);
        written = true;
        this.published += batch.length;
        this.entries += entries;
        this.failing = false;
        if (this.batch.length <= this.pauseAt / 2) this.resumeShards();
        if (this.dropping && this.batch.length < this.maxBuffered / 2) {
          this.log(`stream publishing caught up (${this.droppedByBuffer} events dropped in all)`);
          this.dropping = false;
        }
      } catch (error) {
        this.reportFailure(error as Error);
        // Redis fails: reading goes on, and the bound of maxBuffered applies.
        this.resumeShards();
      } finally {
        if (!written) {
          // Published again with the next batch, as long as the bound allows; the rest is dropped and counted.
          const room = Math.max(0, this.maxBuffered - this.batch.length);
          const kept = batch.slice(0, room);
          this.droppedByBuffer += batch.length - kept.length;
          this.settle(batch.slice(room));
          this.batch = kept.length > 0 ? kept.concat(this.batch) : this.batch;
        } else {
          this.settle(batch);
        }
      }
    };
    this.flushing = run().finally(() => {
      this.flushing = null;
      if (this.batch.length > 0 && !this.failing) void this.flush();
      else if (this.batch.length > 0) setTimeout(() => void this.flush(), this.groupRefreshMs).unref();
    });
    return this.flushing;
  }

  /** Held events were published (or dropped): the cluster may save past them (told once per shard). */
  private settle(events: readonly PendingEvent[]): void {
    const touched = new Set<number>();
    for (const { shardId, s } of events) {
      const queue = this.unpublished.get(shardId);
      if (!queue?.remove(s)) continue;
      if (queue.size === 0) this.unpublished.delete(shardId);
      touched.add(shardId);
    }
    for (const shardId of touched) this.cluster?.sequenceHandled(shardId);
  }

  private resumeShards(): void {
    // Resuming hands the shard's held payloads over at once, which may pause it again.
    const paused = [...this.paused];
    this.paused.clear();
    for (const shardId of paused) this.cluster?.resume(shardId, 'stream-publisher');
  }

  private reportFailure(error: Error): void {
    if (!this.failing) this.warn(`stream publishing: Redis failed (${error.message}); retrying`);
    this.failing = true;
  }
}

/** One event waiting to be published, with its shard. */
interface PendingEvent extends EntryEvent {
  shardId: number;
}

/** Events written per publish, at most. */
const PUBLISH_EVENTS = 1_000;

/** Payload bytes of one entry, at most (an event larger than this gets an entry of its own). */
export const STREAM_ENTRY_MAX_BYTES = 4 * 1024 * 1024;

/** `events` cut into runs of at most {@link STREAM_ENTRY_MAX_BYTES} payload bytes (one event at least each), in order. */
function byEntryBytes(events: PendingEvent[]): PendingEvent[][] {
  const parts: PendingEvent[][] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < events.length; i++) {
    const size = events[i].payload.length;
    if (i > start && bytes + size > STREAM_ENTRY_MAX_BYTES) {
      parts.push(events.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  parts.push(start === 0 ? events : events.slice(start));
  return parts;
}

/**
 * One publish: `XADD <key> MAXLEN ~ <maxLen> * <fields>` per entry (one per shard), in one script call. ARGV: maxLen, then per entry the index of its stream in KEYS, its field count and
 * its fields. The streams share the bot's hash tag, so this also runs on Redis Cluster.
 */
const PUBLISH_SCRIPT = new RedisScript(`
local maxLen = ARGV[1]
local i = 2
while i <= #ARGV do
  local count = tonumber(ARGV[i + 1])
  redis.call('XADD', KEYS[tonumber(ARGV[i])], 'MAXLEN', '~', maxLen, '*', unpack(ARGV, i + 2, i + 1 + count))
  i = i + 2 + count
end
return 0`);

/**
 * A shard's held sequences in arrival order. Batches are published in that order, so removal is almost always at the
 * head (O(1)); a sequence elsewhere (an event published again after a failure) is found by a scan.
 */
class SequenceQueue {
  private items: number[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(sequence: number): void {
    this.items.push(sequence);
  }

  first(): number | null {
    return this.size > 0 ? this.items[this.head] : null;
  }

  /** Removes one occurrence of `sequence`; false when it is not held. */
  remove(sequence: number): boolean {
    if (this.size === 0) return false;
    if (this.items[this.head] === sequence) {
      this.head++;
      if (this.head === this.items.length) {
        this.items = [];
        this.head = 0;
      } else if (this.head >= 1_024 && this.head * 2 >= this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      return true;
    }
    const at = this.items.indexOf(sequence, this.head);
    if (at < 0) return false;
    this.items.splice(at, 1);
    return true;
  }
}

function positiveInteger(option: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${option} must be an integer >= 1, got ${String(value)}`);
  return value;
}
