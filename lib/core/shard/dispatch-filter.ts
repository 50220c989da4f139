/** Events the core always decodes, whatever the filter says: session and guild bookkeeping depend on them. */
export const ALWAYS_DECODED_EVENTS: ReadonlySet<string> = new Set(['READY', 'RESUMED', 'GUILD_CREATE', 'GUILD_DELETE']);

/**
 * Which dispatch events shards decode and emit. Events nobody wants are not parsed into objects: the shard reads
 * only their name and sequence number (sequence tracking stays exact). Events that are only passed on elsewhere
 * (published to Redis Streams for worker apps) can be *forwarded* instead: the shard emits their payload bytes on
 * `forwarded$` without parsing it. An event both wanted and forwarded is decoded. Shared by every shard of a cluster
 * and consulted per event, so names can be added while running.
 */
export class DispatchFilter {
  private all: boolean;
  private readonly names = new Set<string>();
  private forwardEvery = false;
  private readonly forwardNames = new Set<string>();
  private readonly listeners = new Set<() => void>();

  /** @param names - events to decode; omit to decode every event */
  constructor(names?: Iterable<string>) {
    this.all = names === undefined;
    if (names) for (const name of names) this.names.add(name);
  }

  /** True when every event is decoded. */
  get decodesAll(): boolean {
    return this.all;
  }

  /** Decodes these events from now on. */
  add(...names: string[]): void {
    const before = this.names.size;
    for (const name of names) this.names.add(name);
    if (this.names.size !== before) this.changed();
  }

  /** Decodes every event from now on. */
  allowAll(): void {
    if (this.all) return;
    this.all = true;
    this.changed();
  }

  /** Forwards these events undecoded from now on (unless they are wanted, which decodes them). */
  forward(...names: string[]): void {
    const before = this.forwardNames.size;
    for (const name of names) this.forwardNames.add(name);
    if (this.forwardNames.size !== before) this.changed();
  }

  /** Forwards every event that is not wanted, undecoded, from now on. */
  forwardAll(): void {
    if (this.forwardEvery) return;
    this.forwardEvery = true;
    this.changed();
  }

  /** True when every event that is not wanted is forwarded. */
  get forwardsAll(): boolean {
    return this.forwardEvery;
  }

  /** The names forwarded so far. */
  forwardedNames(): string[] {
    return [...this.forwardNames];
  }

  /** Whether event `t`, when it is not wanted, is forwarded as its payload bytes. */
  forwards(t: string): boolean {
    return this.forwardEvery || this.forwardNames.has(t);
  }

  /** The names added so far (besides the always-decoded events). */
  wantedNames(): string[] {
    return [...this.names];
  }

  /** Calls `listener` after each change (e.g. to copy the filter into worker threads); returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  /** Whether event `t` is decoded. */
  wants(t: string): boolean {
    return this.all || this.names.has(t) || ALWAYS_DECODED_EVENTS.has(t);
  }
}
