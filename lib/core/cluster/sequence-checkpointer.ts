/**
 * Saves the handled sequence of busy shards soon after their events: a shard touched by an event is saved at the
 * end of the current event-loop turn (`intervalMs` 0) or `intervalMs` later, together with every other shard
 * touched meanwhile, in one write. One write is in flight at a time; shards touched while it is are saved by the
 * next one, so a slow store coalesces more instead of queueing writes.
 */
export class SequenceCheckpointer {
  private readonly dirty = new Set<number>();
  private armed = false;
  private writing = false;
  private stopped = false;

  /**
   * @param intervalMs - 0 for the end of the current event-loop turn, else a delay in ms
   * @param save - writes the sessions of these shards; its rejection is the caller's to report
   */
  constructor(
    readonly intervalMs: number,
    private readonly save: (shardIds: number[]) => Promise<void>,
  ) {}

  /** Marks a shard for the next write. */
  touch(shardId: number): void {
    if (this.stopped) return;
    this.dirty.add(shardId);
    if (!this.armed && !this.writing) this.arm();
  }

  /** Stops writing; touched shards are left to the periodic and final saves. */
  stop(): void {
    this.stopped = true;
    this.dirty.clear();
  }

  /** Starts writing again after {@link stop}. */
  start(): void {
    this.stopped = false;
  }

  private arm(): void {
    this.armed = true;
    if (this.intervalMs === 0) setImmediate(() => this.run());
    else setTimeout(() => this.run(), this.intervalMs).unref();
  }

  private run(): void {
    this.armed = false;
    if (this.stopped || this.dirty.size === 0) return;
    const ids = [...this.dirty];
    this.dirty.clear();
    this.writing = true;
    const done = () => {
      this.writing = false;
      if (this.dirty.size > 0 && !this.stopped) this.arm();
    };
    this.save(ids).then(done, done);
  }
}
