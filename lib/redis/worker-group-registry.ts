import { dispatchStreamKeys } from './dispatch-stream-entry';
import type { RedisClient } from './redis-options.interface';

/** The union of what the live worker groups want, as the gateway processes read it. */
export interface WantedEvents {
  /** Live groups (at least one worker renewed the registration within its TTL), sorted. */
  groups: string[];
  /** Event names some live group wants. */
  events: Set<string>;
  /** Some live group wants every event (`'*'`). */
  all: boolean;
}

/** Reads the live worker groups and the union of their event names (two round trips). */
export async function readWantedEvents(client: RedisClient, prefix: string): Promise<WantedEvents> {
  const names = ((await client.smembers(dispatchStreamKeys.groups(prefix))) ?? []).sort();
  const wanted: WantedEvents = { groups: [], events: new Set(), all: false };
  if (names.length === 0) return wanted;
  const values = await client.mget(...names.map((name) => dispatchStreamKeys.group(prefix, name)));
  names.forEach((name, i) => {
    const value = values[i];
    if (value === null || value === undefined) return;
    let events: unknown;
    try {
      events = JSON.parse(value);
    } catch {
      return;
    }
    if (!Array.isArray(events)) return;
    wanted.groups.push(name);
    for (const event of events) {
      if (typeof event !== 'string') continue;
      if (event === '*') wanted.all = true;
      else wanted.events.add(event);
    }
  });
  return wanted;
}

/**
 * A worker group's registration: the event names it wants, kept in Redis while one of its workers renews it (every
 * third of `ttlMs`). The gateway processes publish what the live groups want; a group whose registration expired
 * gets nothing more, and what it had not read stays in the streams until the cap trims it.
 */
export class WorkerGroupRegistration {
  private timer: NodeJS.Timeout | null = null;
  private failing = false;

  /**
   * @param client - the Redis client
   * @param prefix - the bot's key prefix
   * @param group - the group's name
   * @param events - the event names its handlers listen to (`'*'` for every event)
   * @param ttlMs - how long the registration lasts without renewal
   * @param warn - receives a line when a renewal fails (once until one succeeds)
   */
  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    readonly group: string,
    readonly events: readonly string[],
    private readonly ttlMs: number,
    private readonly warn: (message: string) => void,
  ) {}

  /** Writes the registration and starts renewing it. */
  async start(): Promise<void> {
    await this.renew();
    this.timer ??= setInterval(() => {
      this.renew().then(
        () => (this.failing = false),
        (error: Error) => {
          if (!this.failing) this.warn(`worker group ${this.group}: registration not renewed: ${error.message}`);
          this.failing = true;
        },
      );
    }, Math.max(1, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  /** Stops renewing (the registration expires `ttlMs` after the last renewal, so a restart within it misses nothing). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async renew(): Promise<void> {
    await this.client
      .multi()
      .set(dispatchStreamKeys.group(this.prefix, this.group), JSON.stringify(this.events), 'PX', this.ttlMs)
      .sadd(dispatchStreamKeys.groups(this.prefix), this.group)
      .exec();
  }
}
