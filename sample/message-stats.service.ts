import { Injectable } from '@nestjs/common';

/** Counts messages per guild. */
@Injectable()
export class MessageStatsService {
  private readonly perGuild = new Map<string, number>();

  /** Counts one message. */
  record(guildId: string | undefined): void {
    const key = guildId ?? 'direct messages';
    this.perGuild.set(key, (this.perGuild.get(key) ?? 0) + 1);
  }

  /** Messages seen in all. */
  get total(): number {
    let sum = 0;
    for (const n of this.perGuild.values()) sum += n;
    return sum;
  }

  /** Counts by guild id. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.perGuild);
  }
}
