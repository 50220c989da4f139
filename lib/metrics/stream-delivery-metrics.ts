import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';
import type { IStreamDeliveryStats, StreamDeliveryReport } from '../core/interfaces/stream-delivery-stats.interface';
import { findStreamDelivery } from '../nest/stream-delivery-lookup';
import { GATEWAY_METRICS_OPTIONS, type GatewayMetricsOptions } from './gateway-metrics';

/**
 * Prometheus metrics of the Redis Streams delivery, in a gateway process (`delivery: 'redis-streams'`) or a
 * `GatewayWorkerModule` app: add it to the app's providers (with `GatewayMetricsModule`'s options, if any: its
 * `registry` and `prefix`). The group figures are read from Redis at each scrape (one pipeline).
 *
 * | metric (default prefix) | type | labels |
 * | --- | --- | --- |
 * | `discord_gateway_stream_group_lag` | gauge | `group`, `shard` (entries the group has not read yet) |
 * | `discord_gateway_stream_group_pending` | gauge | `group`, `shard` (read, not acknowledged) |
 * | `discord_gateway_stream_dropped_by_cap_total` | counter | `group`, `shard` (trimmed before the group read them) |
 * | `discord_gateway_stream_events_total` | counter | `outcome`: in a gateway process `published`, `dropped_by_buffer`, `unencodable`; in a worker `handled`, `acknowledged`, `malformed`, `duplicates`, `claimed` |
 */
@Injectable()
export class StreamDeliveryMetrics implements OnModuleInit, OnModuleDestroy {
  /** The registry the metrics live in. */
  readonly registry: Registry;
  private readonly prefix: string;
  /** Names of the metrics this registers, removed from the registry at shutdown. */
  private readonly names: string[] = [];
  private source: IStreamDeliveryStats | null = null;
  private reading: Promise<StreamDeliveryReport | null> | null = null;

  constructor(
    private readonly moduleRef: ModuleRef,
    @Optional() @Inject(GATEWAY_METRICS_OPTIONS) options: GatewayMetricsOptions | null = null,
  ) {
    this.registry = options?.registry ?? defaultRegistry;
    this.prefix = options?.prefix ?? 'discord_gateway_';
  }

  onModuleInit(): void {
    this.source = findStreamDelivery(this.moduleRef, undefined, 'StreamDeliveryMetrics');
    const registers = [this.registry];
    const read = () => this.read();
    const named = (name: string): string => {
      this.names.push(`${this.prefix}${name}`);
      return `${this.prefix}${name}`;
    };
    const groupGauge = (name: string, help: string, value: (entry: StreamDeliveryReport['groups'][number]) => number | null) =>
      new Gauge({
        name: named(name),
        help,
        labelNames: ['group', 'shard'],
        registers,
        async collect() {
          this.reset();
          for (const entry of (await read())?.groups ?? []) {
            const v = value(entry);
            if (v !== null) this.set({ group: entry.group, shard: String(entry.shardId) }, v);
          }
        },
      });
    // Each registers itself in `registers`; `names` remembers them for shutdown.
    void [
      groupGauge('stream_group_lag', 'Entries of the shard stream the worker group has not read yet.', (entry) => entry.lag),
      groupGauge('stream_group_pending', 'Entries read by a worker of the group and not acknowledged yet.', (entry) => entry.pending),
      new Counter({
        name: named('stream_dropped_by_cap_total'),
        help: 'Entries the stream cap (MAXLEN ~) trimmed before the worker group read them.',
        labelNames: ['group', 'shard'],
        registers,
        async collect() {
          this.reset();
          for (const entry of (await read())?.groups ?? []) this.inc({ group: entry.group, shard: String(entry.shardId) }, entry.droppedByCap);
        },
      }),
      new Counter({
        name: named('stream_events_total'),
        help: 'Events of the Redis Streams delivery of this process, per outcome.',
        labelNames: ['outcome'],
        registers,
        async collect() {
          this.reset();
          const counters = (await read())?.counters ?? {};
          for (const [name, value] of Object.entries(counters)) {
            if (name === 'buffered' || name === 'inFlight') continue;
            this.inc({ outcome: name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) }, value);
          }
        },
      }),
    ];
  }

  onModuleDestroy(): void {
    for (const name of this.names.splice(0)) this.registry.removeSingleMetric(name);
  }

  /** One Redis read per scrape, shared by the metrics (null when Redis did not answer: the figures are left out). */
  private read(): Promise<StreamDeliveryReport | null> {
    this.reading ??= (this.source?.deliveryReport() ?? Promise.resolve(null))
      .catch(() => null)
      .finally(() => setImmediate(() => (this.reading = null)));
    return this.reading;
  }
}
