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
    for (const name of names) this.names.add(name);
  }

  /** Decodes every event from now on. */
  allowAll(): void {
    this.all = true;
  }

  /** Whether event `t` is decoded. */
  wants(t: string): boolean {
    return this.all || this.names.has(t) || ALWAYS_DECODED_EVENTS.has(t);
  }
}
