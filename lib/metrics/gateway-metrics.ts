import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { Counter, Gauge, Histogram, register as defaultRegistry, type Metric, type Registry } from 'prom-client';
import type { Subscription } from 'rxjs';
import { Cluster } from '../cluster/cluster';
import { GatewayEventRouter, type GatewayHandlerOutcome } from '../gateway-event-router';
import type { Shard } from '../shard/shard';
import { ShardState } from '../shard/shard-state';

/** Options of {@link GatewayMetrics}. */
export interface GatewayMetricsOptions {
  /** Registry to register the metrics in. @defaultValue prom-client's default registry */
  registry?: Registry;
  /** Prefix of every metric name. @defaultValue `'discord_gateway_'` */
  prefix?: string;
  /** Buckets of the handler duration histogram, seconds. @defaultValue prom-client's default buckets */
  handlerDurationBuckets?: number[];
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
 * | `discord_gateway_owned_shards` | gauge | none (shards this process owns) |
 * | `discord_gateway_ownership_events_total` | counter | `type` (`claimed`, `released`, `lost`) |
 *
 * Shard counters start at zero with each shard object, so they restart (as a counter reset) when the cluster is
 * brought down and up again in the same process.
 */
@Injectable()
export class GatewayMetrics implements OnModuleInit, OnModuleDestroy {
  /** The registry the metrics live in. */
  readonly registry: Registry;

  private readonly metricsList: Metric[] = [];
  private readonly handlerDuration: Histogram<'event' | 'handler'>;
  private readonly handlerErrors: Counter<'event' | 'handler'>;
  private readonly ownershipEvents: Counter<'type'>;
  private ownershipSubscription: Subscription | null = null;
  private cluster: Cluster | null = null;
  private unobserve: (() => void) | null = null;

  constructor(
    @Optional() @Inject(GATEWAY_METRICS_OPTIONS) options: GatewayMetricsOptions | null = null,
    @Optional() @Inject(ModuleRef) private readonly moduleRef: ModuleRef | null = null,
  ) {
    this.registry = options?.registry ?? defaultRegistry;
    const prefix = options?.prefix ?? 'discord_gateway_';
    const registers = [this.registry];
    const shards = (): Shard[] => [...(this.cluster?.shards.values() ?? [])];
    const add = <M extends Metric>(metric: M): M => {
      this.metricsList.push(metric);
      return metric;
    };

    add(
      new Counter({
        name: `${prefix}events_received_total`,
        help: 'Dispatch events received, per shard and event name (decoded or skipped undecoded).',
        labelNames: ['shard', 'event'],
        registers,
        collect() {
          this.reset();
          for (const shard of shards()) {
            for (const [event, count] of shard.counters.eventsByType) this.inc({ shard: String(shard.id), event }, count);
          }
        },
      }),
    );
    this.handlerDuration = add(
      new Histogram({
        name: `${prefix}handler_duration_seconds`,
        help: 'Run time of @OnEvent handlers, until their promise settled.',
        labelNames: ['event', 'handler'],
        ...(options?.handlerDurationBuckets ? { buckets: options.handlerDurationBuckets } : {}),
        registers,
      }),
    );
    this.handlerErrors = add(
      new Counter({
        name: `${prefix}handler_errors_total`,
        help: '@OnEvent handlers that threw or rejected (guard refusals excluded).',
        labelNames: ['event', 'handler'],
        registers,
      }),
    );
    add(
      new Counter({
        name: `${prefix}reconnects_total`,
        help: 'New connections opened after a lost one, per shard and reason.',
        labelNames: ['shard', 'reason'],
        registers,
        collect() {
          this.reset();
          for (const shard of shards()) {
            for (const [reason, count] of shard.counters.reconnectsByReason) this.inc({ shard: String(shard.id), reason }, count);
          }
        },
      }),
    );
    add(
      new Counter({
        name: `${prefix}handshakes_total`,
        help: 'IDENTIFYs (new sessions) and RESUMEs sent, per shard.',
        labelNames: ['shard', 'type'],
        registers,
        collect() {
          this.reset();
          for (const shard of shards()) {
            this.inc({ shard: String(shard.id), type: 'identify' }, shard.counters.identifies);
            this.inc({ shard: String(shard.id), type: 'resume' }, shard.counters.resumes);
          }
        },
      }),
    );
    add(
      new Gauge({
        name: `${prefix}heartbeat_latency_seconds`,
        help: 'Last heartbeat round trip of each shard (absent before the first ACK of a connection).',
        labelNames: ['shard'],
        registers,
        collect() {
          this.reset();
          for (const shard of shards()) {
            const last = shard.latencyStats.last;
            if (last !== null) this.set({ shard: String(shard.id) }, last / 1000);
          }
        },
      }),
    );
    add(
      new Gauge({
        name: `${prefix}command_queue_length`,
        help: 'Commands waiting to be sent (shard not ready or rate limit reached), per shard.',
        labelNames: ['shard'],
        registers,
        collect() {
          this.reset();
          for (const shard of shards()) this.set({ shard: String(shard.id) }, shard.pendingCommands);
        },
      }),
    );
    for (const [name, help, read] of [
      ['commands_sent_total', 'Commands (presence, voice, member requests...) written to the socket, per shard.', (s: Shard) => s.counters.commandsSent],
      ['received_bytes_total', 'Bytes received on the socket, before decompression, per shard.', (s: Shard) => s.counters.receivedBytes],
      ['payload_bytes_total', 'Payload bytes received, after decompression, per shard.', (s: Shard) => s.counters.payloadBytes],
    ] as const) {
      add(
        new Counter({
          name: `${prefix}${name}`,
          help,
          labelNames: ['shard'],
          registers,
          collect() {
            this.reset();
            for (const shard of shards()) this.inc({ shard: String(shard.id) }, read(shard));
          },
        }),
      );
    }
    add(
      new Gauge({
        name: `${prefix}shard_state`,
        help: 'State of each shard: 1 for its current state, 0 for the others.',
        labelNames: ['shard', 'state'],
        registers,
        collect() {
          this.reset();
          for (const shard of shards()) {
            for (const state of STATES) this.set({ shard: String(shard.id), state }, shard.state === state ? 1 : 0);
          }
        },
      }),
    );
    add(
      new Gauge({
        name: `${prefix}event_lag_seconds`,
        help: 'How long reading has been paused for backpressure, per shard (0 when reading).',
        labelNames: ['shard'],
        registers,
        collect() {
          this.reset();
          for (const shard of shards()) this.set({ shard: String(shard.id) }, shard.info().lagMs / 1000);
        },
      }),
    );
    const cluster = (): Cluster | null => this.cluster;
    add(
      new Gauge({
        name: `${prefix}owned_shards`,
        help: 'Shards this process owns (with shard ownership: whose lease it holds).',
        registers,
        collect() {
          this.set(cluster()?.ownedShards.length ?? 0);
        },
      }),
    );
    this.ownershipEvents = add(
      new Counter({
        name: `${prefix}ownership_events_total`,
        help: 'Shards this process claimed, released (handed over) and lost (lease expired or taken).',
        labelNames: ['type'],
        registers,
      }),
    );
  }

  onModuleInit(): void {
    if (this.cluster || !this.moduleRef) return;
    this.bind(this.moduleRef.get(Cluster, { strict: false }), this.moduleRef.get(GatewayEventRouter, { strict: false }));
  }

  onModuleDestroy(): void {
    this.remove();
  }

  /**
   * Reads the shards of `cluster` on each scrape and times the handlers of `router` (when given). Done by Nest at
   * module init; call it yourself when you use the core without Nest.
   */
  bind(cluster: Cluster, router?: GatewayEventRouter): this {
    this.unobserve?.();
    this.ownershipSubscription?.unsubscribe();
    this.cluster = cluster;
    this.ownershipSubscription = cluster.ownership$.subscribe((event) => {
      if (event.type !== 'members') this.ownershipEvents.inc({ type: event.type });
    });
    this.unobserve = router ? router.observe({ handlerSettled: (outcome) => this.onHandler(outcome) }) : null;
    return this;
  }

  /** Stops observing and removes the metrics from the registry (so that another instance can register them). */
  remove(): void {
    this.unobserve?.();
    this.unobserve = null;
    this.ownershipSubscription?.unsubscribe();
    this.ownershipSubscription = null;
    for (const metric of this.metricsList.splice(0)) this.registry.removeSingleMetric((metric as unknown as { name: string }).name);
  }

  /** The registry's metrics in the text exposition format. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Content type of {@link metrics}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  private onHandler(outcome: GatewayHandlerOutcome): void {
    if (outcome.skipped) return;
    const labels = { event: outcome.event, handler: outcome.handler };
    this.handlerDuration.observe(labels, outcome.durationMs / 1000);
    if (outcome.error) this.handlerErrors.inc(labels);
  }
}
