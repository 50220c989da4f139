import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { Counter, Gauge, Histogram, register as defaultRegistry, type Metric, type Registry } from 'prom-client';
import { Cluster } from '../core/cluster/cluster';
import { DEFAULT_GATEWAY_NAME, resolveGatewayName } from '../nest/constants/gateway-tokens';
import { findGateway } from '../nest/gateway-lookup';
import { GatewayEventRouter, type GatewayHandlerOutcome } from '../nest/gateway-event-router';
import type { IGatewayShard } from '../core/interfaces/gateway-shard.interface';
import { ShardState } from '../core/shard/shard-state';

/** Options of {@link GatewayMetrics}. */
export interface GatewayMetricsOptions {
  /** Registry to register the metrics in. @defaultValue prom-client's default registry */
  registry?: Registry;
  /** Prefix of every metric name. @defaultValue `'discord_gateway_'` */
  prefix?: string;
  /** Buckets of the handler duration histogram, seconds. @defaultValue prom-client's default buckets */
  handlerDurationBuckets?: number[];
  /**
   * The gateways (`GatewayModule` names) to measure, for apps with several bots. With it, every metric has a
   * `gateway` label (the gateway's name) before its others. @defaultValue the default gateway only, without that label
   */
  gateways?: string[];
}

/** Injection token of the {@link GatewayMetricsOptions}. */
export const GATEWAY_METRICS_OPTIONS = Symbol('GATEWAY_METRICS_OPTIONS');

const STATES: ShardState[] = [
  ShardState.Disconnected,
  ShardState.Connecting,
  ShardState.Identifying,
  ShardState.Resuming,
  ShardState.Ready,
  ShardState.FatallyClosed,
];

/**
 * Prometheus metrics of the gateway, with prom-client. Shard figures are read from each shard's counters when the
 * registry is scraped (no work per event); handler durations and errors come from the event router.
 *
 * | metric (default prefix) | type | labels |
 * | --- | --- | --- |
 * | `discord_gateway_events_received_total` | counter | `shard`, `event` |
 * | `discord_gateway_handler_duration_seconds` | histogram | `event`, `handler` |
 * | `discord_gateway_handler_errors_total` | counter | `event`, `handler` |
 * | `discord_gateway_reconnects_total` | counter | `shard`, `reason` |
 * | `discord_gateway_handshakes_total` | counter | `shard`, `type` (`identify` or `resume`) |
 * | `discord_gateway_heartbeat_latency_seconds` | gauge | `shard` |
 * | `discord_gateway_command_queue_length` | gauge | `shard` |
 * | `discord_gateway_commands_sent_total` | counter | `shard` |
 * | `discord_gateway_received_bytes_total` | counter | `shard` (on the socket, compressed) |
 * | `discord_gateway_payload_bytes_total` | counter | `shard` (after decompression) |
 * | `discord_gateway_shard_state` | gauge | `shard`, `state` (1 for the current state) |
 * | `discord_gateway_event_lag_seconds` | gauge | `shard` (backpressure pause) |
 * | `discord_gateway_malformed_payloads_total` | counter | `shard`, `event` |
 * | `discord_gateway_owned_shards` | gauge | none (shards this process owns) |
 * | `discord_gateway_ownership_events_total` | counter | `type` (`claimed`, `released`, `lost`) |
 *
 * With the `gateways` option, every metric also has a `gateway` label.
 *
 * Shard counters start at zero with each shard object, so they restart (as a counter reset) when the cluster is
 * brought down and up again in the same process.
 */
@Injectable()
export class GatewayMetrics implements OnModuleInit, OnModuleDestroy {
  /** The registry the metrics live in. */
  readonly registry: Registry;

  /** Names of the metrics this instance registered (removed by {@link remove}). */
  private readonly names: string[] = [];
  private readonly handlerDuration: Histogram<string>;
  private readonly handlerErrors: Counter<string>;
  /** The gateways measured, from the `gateways` option. */
  private readonly gateways: string[];
  /** Whether every metric has the `gateway` label. */
  private readonly labelled: boolean;
  private readonly clusters = new Map<string, Cluster>();
  private readonly unobservers = new Map<string, () => void>();
  private readonly ownershipEvents: Counter<string>;

  constructor(
    @Optional() @Inject(GATEWAY_METRICS_OPTIONS) options: GatewayMetricsOptions | null = null,
    @Optional() @Inject(ModuleRef) private readonly moduleRef: ModuleRef | null = null,
  ) {
    this.registry = options?.registry ?? defaultRegistry;
    const prefix = options?.prefix ?? 'discord_gateway_';
    const registers = [this.registry];
    const known = new Set(this.registry.getMetricsAsArray().map((metric) => metric.name));
    const gateways = options?.gateways;
    if (gateways !== undefined && (!Array.isArray(gateways) || gateways.length === 0)) {
      throw new RangeError('GatewayMetrics: gateways must be a non-empty array of gateway names');
    }
    this.gateways = (gateways ?? [DEFAULT_GATEWAY_NAME]).map((name, i) => resolveGatewayName(name, `gateways[${i}]`));
    const labelled = gateways !== undefined;
    this.labelled = labelled;
    /** Label names, with `gateway` first when labelled. */
    const names = (...rest: string[]): string[] => (labelled ? ['gateway', ...rest] : rest);
    /** Every shard measured, with its `shard` (and `gateway`) labels. */
    const shards = (): { shard: IGatewayShard; labels: Record<string, string> }[] =>
      [...this.clusters].flatMap(([gateway, cluster]) =>
        [...cluster.shards.values()].map((shard) => {
          const labels: Record<string, string> = labelled ? { gateway, shard: String(shard.id) } : { shard: String(shard.id) };
          return { shard, labels };
        }),
      );
    /** Remembers the name `metric` registered under (read back from the registry: prom-client's types hide it). */
    const add = <M extends Metric>(metric: M): M => {
      for (const { name } of this.registry.getMetricsAsArray()) {
        if (known.has(name)) continue;
        known.add(name);
        this.names.push(name);
      }
      return metric;
    };

    add(
      new Counter({
        name: `${prefix}events_received_total`,
        help: 'Dispatch events received, per shard and event name (decoded or skipped undecoded).',
        labelNames: names('shard', 'event'),
        registers,
        collect() {
          this.reset();
          for (const { shard, labels } of shards()) {
            for (const [event, count] of shard.counters.eventsByType) this.inc({ ...labels, event }, count);
          }
        },
      }),
    );
    this.handlerDuration = add(
      new Histogram({
        name: `${prefix}handler_duration_seconds`,
        help: 'Run time of @OnEvent handlers, until their promise settled.',
        labelNames: names('event', 'handler'),
        ...(options?.handlerDurationBuckets ? { buckets: options.handlerDurationBuckets } : {}),
        registers,
      }),
    );
    this.handlerErrors = add(
      new Counter({
        name: `${prefix}handler_errors_total`,
        help: '@OnEvent handlers that threw or rejected (guard refusals excluded).',
        labelNames: names('event', 'handler'),
        registers,
      }),
    );
    add(
      new Counter({
        name: `${prefix}reconnects_total`,
        help: 'New connections opened after a lost one, per shard and reason.',
        labelNames: names('shard', 'reason'),
        registers,
        collect() {
          this.reset();
          for (const { shard, labels } of shards()) {
            for (const [reason, count] of shard.counters.reconnectsByReason) this.inc({ ...labels, reason }, count);
          }
        },
      }),
    );
    add(
      new Counter({
        name: `${prefix}handshakes_total`,
        help: 'IDENTIFYs (new sessions) and RESUMEs sent, per shard.',
        labelNames: names('shard', 'type'),
        registers,
        collect() {
          this.reset();
          for (const { shard, labels } of shards()) {
            this.inc({ ...labels, type: 'identify' }, shard.counters.identifies);
            this.inc({ ...labels, type: 'resume' }, shard.counters.resumes);
          }
        },
      }),
    );
    add(
      new Gauge({
        name: `${prefix}heartbeat_latency_seconds`,
        help: 'Last heartbeat round trip of each shard (absent before the first ACK of a connection).',
        labelNames: names('shard'),
        registers,
        collect() {
          this.reset();
          for (const { shard, labels } of shards()) {
            const last = shard.latencyStats.last;
            if (last !== null) this.set(labels, last / 1000);
          }
        },
      }),
    );
    add(
      new Gauge({
        name: `${prefix}command_queue_length`,
        help: 'Commands waiting to be sent (shard not ready or rate limit reached), per shard.',
        labelNames: names('shard'),
        registers,
        collect() {
          this.reset();
          for (const { shard, labels } of shards()) this.set(labels, shard.pendingCommands);
        },
      }),
    );
    for (const [name, help, read] of [
      ['commands_sent_total', 'Commands (presence, voice, member requests...) written to the socket, per shard.', (s: IGatewayShard) => s.counters.commandsSent],
      ['received_bytes_total', 'Bytes received on the socket, before decompression, per shard.', (s: IGatewayShard) => s.counters.receivedBytes],
      ['payload_bytes_total', 'Payload bytes received, after decompression, per shard.', (s: IGatewayShard) => s.counters.payloadBytes],
    ] as const) {
      add(
        new Counter({
          name: `${prefix}${name}`,
          help,
          labelNames: names('shard'),
          registers,
          collect() {
            this.reset();
            for (const { shard, labels } of shards()) this.inc(labels, read(shard));
          },
        }),
      );
    }
    add(
      new Gauge({
        name: `${prefix}shard_state`,
        help: 'State of each shard: 1 for its current state, 0 for the others.',
        labelNames: names('shard', 'state'),
        registers,
        collect() {
          this.reset();
          for (const { shard, labels } of shards()) {
            for (const state of STATES) this.set({ ...labels, state }, shard.state === state ? 1 : 0);
          }
        },
      }),
    );
    const clusters = this.clusters;
    add(
      new Counter({
        name: `${prefix}malformed_payloads_total`,
        help: 'Dispatches whose data had a shape their consumer could not use (skipped and reported once), per shard and event name.',
        labelNames: names('shard', 'event'),
        registers,
        collect() {
          this.reset();
          for (const [gateway, cluster] of clusters) {
            for (const { shardId, event, count } of cluster.malformedCounts()) {
              this.inc({ ...(labelled ? { gateway } : {}), shard: String(shardId), event }, count);
            }
          }
        },
      }),
    );
    add(
      new Gauge({
        name: `${prefix}event_lag_seconds`,
        help: 'How long reading has been paused for backpressure, per shard (0 when reading).',
        labelNames: names('shard'),
        registers,
        collect() {
          this.reset();
          for (const { shard, labels } of shards()) this.set(labels, shard.info().lagMs / 1000);
        },
      }),
    );
    add(
      new Gauge({
        name: `${prefix}owned_shards`,
        help: 'Shards this process owns (with shard ownership: whose lease it holds).',
        labelNames: names(),
        registers,
        collect() {
          this.reset();
          for (const [gateway, cluster] of clusters) {
            if (labelled) this.set({ gateway }, cluster.ownedShards.length);
            else this.set(cluster.ownedShards.length);
          }
        },
      }),
    );
    this.ownershipEvents = add(
      new Counter({
        name: `${prefix}ownership_events_total`,
        help: 'Shards this process claimed, released (handed over) and lost (lease expired or taken).',
        labelNames: names('type'),
        registers,
      }),
    );
  }

  onModuleInit(): void {
    if (this.clusters.size > 0 || !this.moduleRef) return;
    for (const gateway of this.gateways) {
      const { cluster, router } = findGateway(this.moduleRef, gateway, 'GatewayMetrics');
      this.bind(cluster, router, gateway);
    }
  }

  onModuleDestroy(): void {
    this.remove();
  }

  /**
   * Reads the shards of `cluster` on each scrape and times the handlers of `router` (when given), as the gateway
   * named `gateway`. Done by Nest at module init; call it yourself when you use the core without Nest.
   */
  bind(cluster: Cluster, router?: GatewayEventRouter, gateway: string = DEFAULT_GATEWAY_NAME): this {
    this.unobservers.get(gateway)?.();
    this.unobservers.delete(gateway);
    this.clusters.set(gateway, cluster);
    const ownership = cluster.ownership$.subscribe((event) => {
      if (event.type !== 'members') this.ownershipEvents.inc(this.labelled ? { gateway, type: event.type } : { type: event.type });
    });
    const unobserveRouter = router ? router.observe({ handlerSettled: (outcome) => this.onHandler(gateway, outcome) }) : null;
    this.unobservers.set(gateway, () => {
      ownership.unsubscribe();
      unobserveRouter?.();
    });
    return this;
  }

  /** Stops observing and removes the metrics from the registry (so that another instance can register them). */
  remove(): void {
    for (const unobserve of this.unobservers.values()) unobserve();
    this.unobservers.clear();
    for (const name of this.names.splice(0)) this.registry.removeSingleMetric(name);
  }

  /** The registry's metrics in the text exposition format. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Content type of {@link metrics}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  private onHandler(gateway: string, outcome: GatewayHandlerOutcome): void {
    if (outcome.skipped) return;
    const labels: Record<string, string> = this.labelled
      ? { gateway, event: outcome.event, handler: outcome.handler }
      : { event: outcome.event, handler: outcome.handler };
    this.handlerDuration.observe(labels, outcome.durationMs / 1000);
    if (outcome.error) this.handlerErrors.inc(labels);
  }
}
