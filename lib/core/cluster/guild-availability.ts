import type { Clock, ClockTimer } from '../interfaces/clock.interface';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';
import { isObject } from '../shard/is-object';
import { realClock } from '../shard/real-clock';

/** Fired once per READY, when every guild READY listed has arrived, or when the wait timed out. */
export interface GuildsReadyEvent {
  shardId: number;
  /** Guilds available at that moment. */
  available: number;
  /** Ids of guilds still unavailable (those missing when the wait timed out, or in an outage). */
  unavailable: string[];
  /** True when the timeout fired before every listed guild arrived. */
  timedOut: boolean;
}

/**
 * Tracks which guilds of one shard are available. READY lists the shard's guilds (all unavailable);
 * each GUILD_CREATE makes one available; `GUILD_DELETE` with `unavailable: true` is an outage, without it
 * the bot left the guild. Data of the wrong shape is reported to `onMalformed` and skipped (a READY whose
 * `guilds` list holds a bad entry still counts its good ones).
 */
export class GuildAvailability {
  private readonly available = new Set<string>();
  private readonly unavailable = new Set<string>();
  private readonly awaited = new Set<string>();
  private timer: ClockTimer | null = null;
  private ready = false;

  constructor(
    private readonly shardId: number,
    private readonly timeoutMs: number,
    private readonly onReady: (event: GuildsReadyEvent) => void,
    private readonly onMalformed: (event: GatewayDispatch, problem: string) => void = () => undefined,
    /** Where the timeout is timed. @defaultValue the real clock */
    private readonly clock: Clock = realClock,
  ) {}

  /** True once "guilds ready" fired for the current session. */
  get guildsReady(): boolean {
    return this.ready;
  }

  /** Counts of available and unavailable guilds. */
  counts(): { available: number; unavailable: number } {
    return { available: this.available.size, unavailable: this.unavailable.size };
  }

  /** Feeds one dispatch of the shard. */
  handle(event: GatewayDispatch): void {
    switch (event.t) {
      case 'READY':
        return this.onSessionStart(event);
      case 'GUILD_CREATE':
      case 'GUILD_DELETE': {
        const guild = event.d as { id?: unknown; unavailable?: unknown } | null;
        if (!isObject(guild)) return this.onMalformed(event, 'd is not an object');
        if (typeof guild.id !== 'string') return this.onMalformed(event, 'd.id is not a string');
        if (event.t === 'GUILD_CREATE') return this.onGuildCreate(guild.id, guild.unavailable === true);
        return this.onGuildDelete(guild.id, guild.unavailable === true);
      }
    }
  }

  /** Stops the timer. */
  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private onGuildCreate(id: string, unavailable: boolean): void {
    if (unavailable) {
      this.available.delete(id);
      this.unavailable.add(id);
    } else {
      this.unavailable.delete(id);
      this.available.add(id);
    }
    this.awaited.delete(id);
    this.checkReady();
  }

  private onGuildDelete(id: string, unavailable: boolean): void {
    this.available.delete(id);
    if (unavailable) {
      this.unavailable.add(id);
    } else {
      this.unavailable.delete(id);
      this.awaited.delete(id);
      this.checkReady();
    }
  }

  private onSessionStart(event: GatewayDispatch): void {
    this.stop();
    this.ready = false;
    this.available.clear();
    this.unavailable.clear();
    this.awaited.clear();
    const guilds = readyGuildIds(event.d);
    if (guilds.problem) this.onMalformed(event, guilds.problem);
    for (const id of guilds.ids) {
      this.unavailable.add(id);
      this.awaited.add(id);
    }
    if (this.awaited.size === 0) return this.fire(false);
    this.timer = this.clock.setTimeout(() => this.fire(true), this.timeoutMs);
  }

  private checkReady(): void {
    if (!this.ready && this.awaited.size === 0 && this.timer) this.fire(false);
  }

  private fire(timedOut: boolean): void {
    this.stop();
    this.ready = true;
    this.awaited.clear();
    this.onReady({
      shardId: this.shardId,
      available: this.available.size,
      unavailable: [...this.unavailable],
      timedOut,
    });
  }
}

/** The guild ids a READY lists, and what was wrong with the list (its bad entries are left out). */
function readyGuildIds(d: unknown): { ids: string[]; problem: string | null } {
  if (!isObject(d)) return { ids: [], problem: 'd is not an object' };
  if (d.guilds === undefined) return { ids: [], problem: null };
  if (!Array.isArray(d.guilds)) return { ids: [], problem: 'd.guilds is not an array' };
  const ids: string[] = [];
  let bad = 0;
  let first = -1;
  for (let i = 0; i < d.guilds.length; i++) {
    const guild: unknown = d.guilds[i];
    if (isObject(guild) && typeof guild.id === 'string') {
      ids.push(guild.id);
    } else if (bad++ === 0) {
      first = i;
    }
  }
  const problem = bad === 0 ? null : `${bad} entr${bad === 1 ? 'y' : 'ies'} of d.guilds without a string id (first at index ${first})`;
  return { ids, problem };
}
