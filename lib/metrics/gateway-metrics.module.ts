import { Module, type DynamicModule } from '@nestjs/common';
import { GATEWAY_METRICS_OPTIONS, GatewayMetrics, type GatewayMetricsOptions } from './gateway-metrics';

/** Provides {@link GatewayMetrics} to the module that imports it. The app must also import `GatewayModule`. */
@Module({})
export class GatewayMetricsModule {
  static forRoot(options: GatewayMetricsOptions & { global?: boolean } = {}): DynamicModule {
    const { global, ...rest } = options;
    return {
      module: GatewayMetricsModule,
      global: global ?? false,
      providers: [{ provide: GATEWAY_METRICS_OPTIONS, useValue: rest }, GatewayMetrics],
      exports: [GatewayMetrics],
    };
  }
}
