import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { Subscription } from 'rxjs';
import { Cluster } from '../cluster/cluster';
import { ShardState } from '../shard/shard-state';

/** Options of {@link GatewayHealthIndicator}. */
export interface GatewayHealthOptions {
  /**
   * A shard that has not been ready for longer than this makes the check `down`, ms. Shorter outages (a resume,
   * a reconnect with backoff) keep it `up`. @defaultValue `30000`
   */
  disconnectedThresholdMs?: number;
  /** Key of the result in terminus' output. @defaultValue `'discord-gateway'` */
  key?: string;
}

/** Injection token of the {@link GatewayHealthOptions}. */
export const GATEWAY_HEALTH_OPTIONS = Symbol('GATEWAY_HEALTH_OPTIONS');

/** What the health check reports about one shard. */
export interface GatewayShardHealth {
  state: ShardState;
  /** Last heartbeat round trip, ms (null before the first ACK of the current connection). */
  latency: number | null;
  /** How far event handling lags the socket (backpressure pause), ms. */
  lagMs: number;
  reconnectAttempts: number;
  /** How long the shard has not been ready, ms (0 when ready). */
  notReadyForMs: number;
  /** Why the shard stopped, when it is fatally closed. */
  error?: string;
}

/**
 * A `@nestjs/terminus` health indicator for the gateway: `down` when any shard of this process is fatally closed
 * or has not been ready for longer than `disconnectedThresholdMs`, or when no shard runs; `up` otherwise. Details
 * per shard: state, latency, lag and reconnect attempts.
 *
 * ```ts
 * @Get('health')
 * check() {
 *   return this.health.check([() => this.gateway.isHealthy()]);
 * }
 * ```
 */
@Injectable()
export class GatewayHealthIndicator implements OnModuleInit, OnModuleDestroy {
  private readonly thresholdMs: number;
  private readonly key: string;
  /** When each shard last stopped being ready (absent while ready). */
  private readonly notReadySince = new Map<number, number>();
  private readonly startedAt = Date.now();
  private cluster: Cluster | null = null;
  private subscription: Subscription | null = null;

  constructor(
    private readonly health: HealthIndicatorService,
    private readonly moduleRef: ModuleRef,
    @Optional() @Inject(GATEWAY_HEALTH_OPTIONS) options: GatewayHealthOptions | null = null,
  ) {
    const threshold = options?.disconnectedThresholdMs ?? 30_000;
    if (!Number.isFinite(threshold) || threshold < 0) {
      throw new RangeError(`GatewayHealthIndicator: disconnectedThresholdMs must be a number >= 0, got ${String(threshold)}`);
    }
    this.thresholdMs = threshold;
    this.key = options?.key ?? 'discord-gateway';
  }

  onModuleInit(): void {
    const cluster = this.moduleRef.get(Cluster, { strict: false });
    this.cluster = cluster;
    this.subscription = cluster.state$.subscribe(({ shardId, state }) => {
      if (state === ShardState.Ready) this.notReadySince.delete(shardId);
      else if (!this.notReadySince.has(shardId)) this.notReadySince.set(shardId, Date.now());
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
    this.subscription = null;
  }

  /** The check, for `HealthCheckService.check([() => indicator.isHealthy()])`. */
  isHealthy(key: string = this.key): HealthIndicatorResult {
    const session = this.health.check(key);
    const shards = this.cluster?.info() ?? [];
    if (shards.length === 0) return session.down({ message: 'no shard is running', shards: {} });
    const now = Date.now();
    const details: Record<string, GatewayShardHealth> = {};
    const problems: string[] = [];
    for (const shard of shards) {
      const since = shard.state === ShardState.Ready ? now : (this.notReadySince.get(shard.id) ?? this.startedAt);
      const entry: GatewayShardHealth = {
        state: shard.state,
        latency: shard.latency.last,
        lagMs: shard.lagMs,
        reconnectAttempts: shard.reconnectAttempts,
        notReadyForMs: now - since,
      };
      if (shard.state === ShardState.FatallyClosed) {
        entry.error = shard.lastError ?? 'fatally closed';
        problems.push(`shard ${shard.id} is fatally closed`);
      } else if (entry.notReadyForMs > this.thresholdMs) {
        problems.push(`shard ${shard.id} has not been ready for ${entry.notReadyForMs} ms`);
      }
      details[String(shard.id)] = entry;
    }
    if (problems.length > 0) return session.down({ message: problems.join('; '), shards: details });
    return session.up({ shards: details });
  }
}
