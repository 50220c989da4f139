import { Module, type DynamicModule } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { GATEWAY_HEALTH_OPTIONS, GatewayHealthIndicator, type GatewayHealthOptions } from './gateway-health.indicator';

/**
 * Provides the {@link GatewayHealthIndicator} (with terminus' `HealthCheckService`, re-exported) to the module that
 * imports it. The app must also import `GatewayModule`.
 */
@Module({})
export class GatewayHealthModule {
  static forRoot(options: GatewayHealthOptions = {}): DynamicModule {
    return {
      module: GatewayHealthModule,
      imports: [TerminusModule],
      providers: [{ provide: GATEWAY_HEALTH_OPTIONS, useValue: options }, GatewayHealthIndicator],
      exports: [GatewayHealthIndicator, TerminusModule],
    };
  }
}
