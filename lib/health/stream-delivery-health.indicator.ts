import { Inject, Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { IStreamDeliveryStats } from '../core/interfaces/stream-delivery-stats.interface';
import { findStreamDelivery } from '../nest/stream-delivery-lookup';

/** Options of {@link StreamDeliveryHealthIndicator}. */
export interface StreamDeliveryHealthOptions {
  /** A group whose lag on one shard stream is above this is `down`. @defaultValue no limit (lag is reported only) */
  maxLag?: number;
  /** Key of the result in terminus' output. @defaultValue `'discord-streams'` */
  key?: string;
}

/** Injection token of the {@link StreamDeliveryHealthOptions}. */
export const STREAM_DELIVERY_HEALTH_OPTIONS = Symbol('STREAM_DELIVERY_HEALTH_OPTIONS');

/** What the health check reports about one worker group (summed over the shard streams). */
export interface StreamGroupHealth {
  /** Entries not read yet (null when Redis cannot tell for some stream). */
  lag: number | null;
  /** Entries read and not acknowledged. */
  pending: number;
  /** Entries the stream cap trimmed before the group read them. */
  droppedByCap: number;
  /** The largest lag of one shard stream. */
  maxShardLag: number | null;
}

/**
 * A `@nestjs/terminus` health indicator for the Redis Streams delivery (a gateway process with
 * `delivery: 'redis-streams'`, or a `GatewayWorkerModule` app; add it to the providers with `TerminusModule`
 * imported). Details per worker group: lag, pending entries and cap drops, read from Redis; `down` when Redis does
 * not answer or a group's lag on one shard stream is above `maxLag`.
 */
@Injectable()
export class StreamDeliveryHealthIndicator implements OnModuleInit {
  private source: IStreamDeliveryStats | null = null;
  private readonly key: string;
  private readonly maxLag: number | null;

  constructor(
    private readonly health: HealthIndicatorService,
    private readonly moduleRef: ModuleRef,
    @Optional() @Inject(STREAM_DELIVERY_HEALTH_OPTIONS) options: StreamDeliveryHealthOptions | null = null,
  ) {
    const maxLag = options?.maxLag;
    if (maxLag !== undefined && (!Number.isInteger(maxLag) || maxLag < 0)) {
      throw new RangeError(`StreamDeliveryHealthIndicator: maxLag must be an integer >= 0, got ${String(maxLag)}`);
    }
    this.maxLag = maxLag ?? null;
    this.key = options?.key ?? 'discord-streams';
  }

  onModuleInit(): void {
    this.source = findStreamDelivery(this.moduleRef, undefined, 'StreamDeliveryHealthIndicator');
  }

  /** The check, for `HealthCheckService.check([() => indicator.isHealthy()])`. */
  async isHealthy(key: string = this.key): Promise<HealthIndicatorResult> {
    const session = this.health.check(key);
    let report;
    try {
      report = await this.source!.deliveryReport();
    } catch (error) {
      return session.down({ message: `Redis did not answer: ${(error as Error).message}` });
    }
    const groups: Record<string, StreamGroupHealth> = {};
    const problems: string[] = [];
    for (const entry of report.groups) {
      const group = (groups[entry.group] ??= { lag: 0, pending: 0, droppedByCap: 0, maxShardLag: 0 });
      group.lag = group.lag === null || entry.lag === null ? null : group.lag + entry.lag;
      group.maxShardLag = group.maxShardLag === null || entry.lag === null ? null : Math.max(group.maxShardLag, entry.lag);
      group.pending += entry.pending;
      group.droppedByCap += entry.droppedByCap;
      if (this.maxLag !== null && entry.lag !== null && entry.lag > this.maxLag) {
        problems.push(`group ${entry.group} is ${entry.lag} entries behind on shard ${entry.shardId} (maxLag ${this.maxLag})`);
      }
    }
    const details = { role: report.role, counters: report.counters, groups };
    if (problems.length > 0) return session.down({ message: problems.join('; '), ...details });
    return session.up(details);
  }
}
