import { describe, it } from 'node:test';
import { expect } from 'expect';
import { Injectable, type INestApplication } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { Registry } from 'prom-client';
import { ClusterService, GatewayModule, OnEvent } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import { STREAM_DELIVERY_HEALTH_OPTIONS, StreamDeliveryHealthIndicator } from '../../lib/health';
import { GATEWAY_SCALE_OUT } from '../../lib/nest/interfaces/gateway-scale-out.interface';
import { GATEWAY_METRICS_OPTIONS, StreamDeliveryMetrics } from '../../lib/metrics';
import { GatewayWorker, GatewayWorkerModule, type RedisGatewayScaleOut } from '../../lib/redis';
import { createMessage } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { useRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';

const harness = new NestHarness();
let server: RunningRedisServer;

@Injectable()
class Handlers {
  @OnEvent('MESSAGE_CREATE')
  onMessage(): void {}
}

/** The observability providers, with a registry of the app's own. */
function observability(registry: Registry) {
  return [
    { provide: GATEWAY_METRICS_OPTIONS, useValue: { registry } },
    { provide: STREAM_DELIVERY_HEALTH_OPTIONS, useValue: { maxLag: 2 } },
    StreamDeliveryMetrics,
    StreamDeliveryHealthIndicator,
  ];
}

void describe('Redis Streams delivery: metrics and health (real redis-server, real Nest apps)', () => {
  useRedisServer((started) => (server = started.server), () => harness.cleanup());

  void it('reports each group’s lag and pending entries and this process’s counters, in metrics and in the health check', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = `ndg-test:streams-observability:${process.pid}`;
    const logger = new CapturingLogger();
    const gatewayRegistry = new Registry();
    const app: INestApplication = await harness.app(
      {
        imports: [
          GatewayModule.forRoot(
            moduleOptions(gateway, { redis: { url: server.url }, keyPrefix, shards: { total: 2, ownership: 'redis' }, delivery: 'redis-streams' }),
          ),
          TerminusModule,
        ],
        providers: observability(gatewayRegistry),
      },
      logger,
    );
    await eventually(() => app.get(ClusterService).info().filter((s) => s.state === ShardState.Ready).length === 2, 10_000, 'ready');
    // Group "idle" registers and stops; group "a" keeps consuming.
    const idle = await harness.app({ imports: [GatewayWorkerModule.forRoot({ redis: { url: server.url }, keyPrefix, group: 'idle' })], providers: [Handlers] }, logger);
    await harness.closeApp(idle);
    const workerRegistry = new Registry();
    const worker = await harness.app(
      {
        imports: [GatewayWorkerModule.forRoot({ redis: { url: server.url }, keyPrefix, group: 'a' }), TerminusModule],
        providers: [Handlers, ...observability(workerRegistry)],
      },
      logger,
    );
    const publisher = app.get<RedisGatewayScaleOut>(GATEWAY_SCALE_OUT, { strict: false }).delivery!;
    await publisher.refresh();
    // One event per publish (each waits for the previous one): five entries, so the lag of "idle" is 5.
    for (let i = 0; i < 5; i++) {
      gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(i));
      await eventually(() => publisher.stats().published === i + 1, 10_000, `event ${i} published`);
    }
    await eventually(() => worker.get(GatewayWorker).stats().acknowledged === 5, 10_000, 'five events handled and acknowledged in group a');

    const gatewayMetrics = await gatewayRegistry.metrics();
    expect(gatewayMetrics).toContain('discord_gateway_stream_group_lag{group="idle",shard="0"} 5');
    expect(gatewayMetrics).toContain('discord_gateway_stream_group_lag{group="a",shard="0"} 0');
    expect(gatewayMetrics).toContain('discord_gateway_stream_group_pending{group="a",shard="0"} 0');
    expect(gatewayMetrics).toContain('discord_gateway_stream_events_total{outcome="published"} 5');
    expect(gatewayMetrics).toContain('discord_gateway_stream_dropped_by_cap_total{group="idle",shard="0"} 0');
    const workerMetrics = await workerRegistry.metrics();
    expect(workerMetrics).toContain('discord_gateway_stream_events_total{outcome="handled"} 5');
    expect(workerMetrics).toContain('discord_gateway_stream_group_lag{group="a",shard="0"} 0');
    expect(workerMetrics).not.toContain('group="idle"');

    const gatewayHealth = await app.get(StreamDeliveryHealthIndicator).isHealthy();
    expect(gatewayHealth['discord-streams']).toMatchObject({
      status: 'down',
      message: 'group idle is 5 entries behind on shard 0 (maxLag 2)',
      groups: { idle: { lag: 5, pending: 0, droppedByCap: 0, maxShardLag: 5 }, a: { lag: 0, pending: 0 } },
    });
    const workerHealth = await worker.get(StreamDeliveryHealthIndicator).isHealthy();
    expect(workerHealth['discord-streams']).toMatchObject({ status: 'up', role: 'worker', groups: { a: { lag: 0, pending: 0 } } });
  });
});
