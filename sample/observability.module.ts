import { Controller, Get, Header, Module, type DynamicModule } from '@nestjs/common';
import { HealthCheckService } from '@nestjs/terminus';
import { Registry } from 'prom-client';
import { GatewayHealthIndicator, GatewayHealthModule, type GatewayHealthOptions } from '../lib/health';
import { GatewayMetrics, GatewayMetricsModule } from '../lib/metrics';

/** GET /health (terminus) and GET /metrics (Prometheus text). */
@Controller()
export class ObservabilityController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly gateway: GatewayHealthIndicator,
    private readonly gatewayMetrics: GatewayMetrics,
  ) {}

  /** 200 with `status: 'ok'` while every shard is fine, 503 with the shards' details otherwise. */
  @Get('health')
  check() {
    return this.health.check([() => this.gateway.isHealthy()]);
  }

  @Get('metrics')
  @Header('Content-Type', Registry.PROMETHEUS_CONTENT_TYPE)
  metrics(): Promise<string> {
    return this.gatewayMetrics.metrics();
  }
}

/** Options of {@link ObservabilityModule.register}. */
export interface ObservabilityOptions extends GatewayHealthOptions {
  /** Registry of the metrics. @defaultValue a new registry, so that several apps in one process never clash */
  registry?: Registry;
}

/** Health checks and metrics of the sample bot, served over HTTP. */
@Module({})
export class ObservabilityModule {
  static register(options: ObservabilityOptions = {}): DynamicModule {
    const { registry, ...health } = options;
    return {
      module: ObservabilityModule,
      imports: [GatewayHealthModule.forRoot(health), GatewayMetricsModule.forRoot({ registry: registry ?? new Registry() })],
      controllers: [ObservabilityController],
    };
  }
}
