import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { Subscription } from 'rxjs';
import type { Cluster, ClusterShardInfo } from '../core/cluster/cluster';
import { DEFAULT_GATEWAY_NAME, resolveGatewayName } from '../nest/constants/gateway-tokens';
import { findGateway } from '../nest/gateway-lookup';
import { ShardState } from '../core/shard/shard-state';

/** Options of {@link GatewayHealthIndicator}. */
export interface GatewayHealthOptions {
  /**
   * A shard that has not been ready for longer than this makes the check `down`, ms. Shorter outages (a resume,
   * a reconnect with backoff) keep it `up`. @defaultValue `30000`
   */
  disconnectedThresholdMs?: number;
  /** Key of the result in terminus' output. @defaultValue `'discord-gateway'` */
  key?: string;
  /**
   * The gateways (`GatewayModule` names) to check, for apps with several bots. With it, the per-shard details are
   * keyed `<gateway>/<shard>` (e.g. `support/0`) and so are the problems the result lists.
   * @defaultValue the default gateway only, with details keyed by shard id
   */
  gateways?: string[];
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
 * per shard: state, latency, lag and reconnect attempts. With the `gateways` option it checks each named gateway
 * (each bot) and labels every shard with its gateway.
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
  private readonly notReadySince = new Map<string, number>();
  private readonly startedAt = Date.now();
  private readonly gateways: string[];
  /** Whether details and problems carry the gateway name (the `gateways` option was given). */
  private readonly labelled: boolean;
  private clusters: { gateway: string; cluster: Cluster }[] = [];
  private subscriptions: Subscription[] = [];

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
    const gateways = options?.gateways;
    if (gateways !== undefined && (!Array.isArray(gateways) || gateways.length === 0)) {
      throw new RangeError('GatewayHealthIndicator: gateways must be a non-empty array of gateway names');
    }
    this.gateways = (gateways ?? [DEFAULT_GATEWAY_NAME]).map((name, i) => resolveGatewayName(name, `gateways[${i}]`));
    this.labelled = gateways !== undefined;
  }

  onModuleInit(): void {
    this.clusters = this.gateways.map((gateway) => ({ gateway, cluster: findGateway(this.moduleRef, gateway, 'GatewayHealthIndicator').cluster }));
    this.subscriptions = this.clusters.map(({ gateway, cluster }) =>
      cluster.state$.subscribe(({ shardId, state }) => {
        const label = this.label(gateway, shardId);
        if (state === ShardState.Ready) this.notReadySince.delete(label);
        else if (!this.notReadySince.has(label)) this.notReadySince.set(label, Date.now());
      }),
    );
  }

  onModuleDestroy(): void {
    for (const subscription of this.subscriptions.splice(0)) subscription.unsubscribe();
  }

  /** The check, for `HealthCheckService.check([() => indicator.isHealthy()])`. */
  isHealthy(key: string = this.key): HealthIndicatorResult {
    const session = this.health.check(key);
    const now = Date.now();
    const details: Record<string, GatewayShardHealth> = {};
    const problems: string[] = [];
    for (const { gateway, cluster } of this.clusters) {
      const shards = cluster.info();
      if (shards.length === 0) problems.push(this.labelled ? `gateway ${gateway} runs no shard` : 'no shard is running');
      for (const shard of shards) this.checkShard(gateway, shard, now, details, problems);
    }
    if (this.clusters.length === 0) problems.push('no shard is running');
    if (problems.length > 0) return session.down({ message: problems.join('; '), shards: details });
    return session.up({ shards: details });
  }

  /** `<gateway>/<shard>` when the `gateways` option was given, else the shard id. */
  private label(gateway: string, shardId: number): string {
    return this.labelled ? `${gateway}/${shardId}` : String(shardId);
  }

  private checkShard(
    gateway: string,
    shard: ClusterShardInfo,
    now: number,
    details: Record<string, GatewayShardHealth>,
    problems: string[],
  ): void {
    const label = this.label(gateway, shard.id);
    const since = shard.state === ShardState.Ready ? now : (this.notReadySince.get(label) ?? this.startedAt);
    const entry: GatewayShardHealth = {
      state: shard.state,
      latency: shard.latency.last,
      lagMs: shard.lagMs,
      reconnectAttempts: shard.reconnectAttempts,
      notReadyForMs: now - since,
    };
    if (shard.state === ShardState.FatallyClosed) {
      entry.error = shard.lastError ?? 'fatally closed';
      problems.push(`shard ${label} is fatally closed`);
    } else if (entry.notReadyForMs > this.thresholdMs) {
      problems.push(`shard ${label} has not been ready for ${entry.notReadyForMs} ms`);
    }
    details[label] = entry;
  }
}
