import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';

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
 * the bot left the guild.
 */
export class GuildAvailability {
  private readonly available = new Set<string>();
  private readonly unavailable = new Set<string>();
  private readonly awaited = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private ready = false;

  constructor(
    private readonly shardId: number,
    private readonly timeoutMs: number,
    private readonly onReady: (event: GuildsReadyEvent) => void,
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
        return this.onSessionStart(event.d as { guilds?: { id: string }[] });
      case 'GUILD_CREATE': {
        const guild = event.d as { id?: string; unavailable?: boolean };
        if (typeof guild?.id !== 'string') return;
        if (guild.unavailable === true) {
          this.available.delete(guild.id);
          this.unavailable.add(guild.id);
        } else {
          this.unavailable.delete(guild.id);
          this.available.add(guild.id);
        }
        this.awaited.delete(guild.id);
        return this.checkReady();
      }
      case 'GUILD_DELETE': {
        const guild = event.d as { id?: string; unavailable?: boolean };
        if (typeof guild?.id !== 'string') return;
        this.available.delete(guild.id);
        if (guild.unavailable === true) {
          this.unavailable.add(guild.id);
        } else {
          this.unavailable.delete(guild.id);
          this.awaited.delete(guild.id);
          this.checkReady();
        }
        return;
      }
    }
  }

  /** Stops the timer. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onSessionStart(ready: { guilds?: { id: string }[] }): void {
    this.stop();
    this.ready = false;
    this.available.clear();
    this.unavailable.clear();
    this.awaited.clear();
    for (const guild of ready?.guilds ?? []) {
      this.unavailable.add(guild.id);
      this.awaited.add(guild.id);
    }
    if (this.awaited.size === 0) return this.fire(false);
    this.timer = setTimeout(() => this.fire(true), this.timeoutMs);
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
