import type { IIdentifyQueue } from '../interfaces/identify-queue.interface';
import { abortError } from '../queue/abort-error';

/**
 * Passes each starting shard's first IDENTIFY request to `queue` only after those of every lower shard id, so that
 * the queue sees them in bucket order however the HELLOs arrive. Later requests go straight through.
 */
export class StartOrderQueue implements IIdentifyQueue {
  private readonly pending: number[];
  private readonly held = new Map<number, () => void>();

  /**
   * @param queue - the identify queue the requests go on to
   * @param ids - the shards that start by identifying, in any order
   */
  constructor(
    private readonly queue: IIdentifyQueue,
    ids: number[],
  ) {
    this.pending = [...ids].sort((a, b) => a - b);
  }

  /** Waits until every lower shard id of the start order has asked, then for `queue`. */
  acquire(shardId: number, signal?: AbortSignal): Promise<void> {
    const index = this.pending.indexOf(shardId);
    if (index <= 0) {
      const granted = this.queue.acquire(shardId, signal);
      if (index === 0) this.forwardNext();
      return granted;
    }
    if (signal?.aborted) return Promise.reject(abortError());
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.held.delete(shardId);
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.held.set(shardId, () => {
        signal?.removeEventListener('abort', onAbort);
        this.queue.acquire(shardId, signal).then(resolve, reject);
      });
    });
  }

  /** Passed on to `queue`. */
  refund(shardId: number): void {
    this.queue.refund?.(shardId);
  }

  /** Passed on to `queue`. */
  identified(shardId: number): void {
    this.queue.identified?.(shardId);
  }

  /** Puts a shard that starts later (without a session) into the start order. */
  add(shardId: number): void {
    if (this.pending.includes(shardId)) return;
    let at = this.pending.length;
    while (at > 0 && this.pending[at - 1] > shardId) at--;
    this.pending.splice(at, 0, shardId);
  }

  /** Takes a shard out of the start order (it closed before asking), so the shards behind it are not held. */
  forget(shardId: number): void {
    const index = this.pending.indexOf(shardId);
    if (index < 0) return;
    if (index === 0) this.forwardNext();
    else this.pending.splice(index, 1);
  }

  /** Drops the head of `pending` and forwards the requests already waiting behind it, in order. */
  private forwardNext(): void {
    this.pending.shift();
    while (this.pending.length > 0) {
      const forward = this.held.get(this.pending[0]);
      if (!forward) return;
      this.held.delete(this.pending.shift()!);
      forward();
    }
  }
}
