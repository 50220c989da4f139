/** Events the core always decodes, whatever the filter says: session and guild bookkeeping depend on them. */
export const ALWAYS_DECODED_EVENTS: ReadonlySet<string> = new Set(['READY', 'RESUMED', 'GUILD_CREATE', 'GUILD_DELETE']);

/**
 * Which dispatch events shards decode and emit. Events nobody wants are not parsed into objects: the shard reads
 * only their name and sequence number (sequence tracking stays exact). Shared by every shard of a cluster and
 * consulted per event, so names can be added while running.
 */
export class DispatchFilter {
  private all: boolean;
  private readonly names = new Set<string>();
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
