import type { IIdentifyQueue } from '../interfaces/identify-queue.interface';

/** Options of {@link InMemoryIdentifyQueue}. */
export interface InMemoryIdentifyQueueOptions {
  /** `max_concurrency` from `GET /gateway/bot`. @defaultValue `1` */
  maxConcurrency?: number;
  /** Length of one identify window, ms. @defaultValue `5000` */
  windowMs?: number;
}

interface Waiter {
  shardId: number;
  resolve: () => void;
  reject: (error: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * Grants one IDENTIFY per rate-limit key (`shardId % maxConcurrency`) per window, in the order asked.
 * Keys are independent, so a whole bucket of shards may identify at once.
 */
export class InMemoryIdentifyQueue implements IIdentifyQueue {
  private readonly maxConcurrency: number;
  private readonly windowMs: number;
  private readonly waiting = new Map<number, Waiter[]>();
  private readonly nextFreeAt = new Map<number, number>();
  private readonly timers = new Map<number, NodeJS.Timeout>();

  constructor(options: InMemoryIdentifyQueueOptions = {}) {
    this.maxConcurrency = options.maxConcurrency ?? 1;
    this.windowMs = options.windowMs ?? 5_000;
  }

  acquire(shardId: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError());
    const key = shardId % this.maxConcurrency;
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { shardId, resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const list = this.waiting.get(key);
          const index = list ? list.indexOf(waiter) : -1;
          if (index >= 0) list!.splice(index, 1);
          reject(abortError());
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      const list = this.waiting.get(key) ?? [];
      list.push(waiter);
      this.waiting.set(key, list);
      this.drain(key);
    });
  }

  private drain(key: number): void {
    if (this.timers.has(key)) return;
    const list = this.waiting.get(key);
    if (!list || list.length === 0) return;
    const now = Date.now();
    const freeAt = this.nextFreeAt.get(key) ?? 0;
    if (now >= freeAt) {
      const waiter = list.shift()!;
      if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
      this.nextFreeAt.set(key, now + this.windowMs);
      waiter.resolve();
    }
    if (list.length > 0) {
      const wait = Math.max(0, (this.nextFreeAt.get(key) ?? now) - now);
      this.timers.set(
        key,
        setTimeout(() => {
          this.timers.delete(key);
          this.drain(key);
        }, wait),
      );
    }
  }
}

function abortError(): Error {
  const error = new Error('The identify wait was cancelled');
  error.name = 'AbortError';
  return error;
}
