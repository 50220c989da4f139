import { ConfigurableModuleBuilder, Module, type ConfigurableModuleAsyncOptions, type DynamicModule } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { GATEWAY_HEALTH_OPTIONS, GatewayHealthIndicator, type GatewayHealthOptions } from './gateway-health.indicator';

/** A class that creates the health check options, for `GatewayHealthModule.forRootAsync({ useClass })`. */
export interface GatewayHealthOptionsFactory {
  createGatewayHealthOptions(): GatewayHealthOptions | Promise<GatewayHealthOptions>;
}

/**
 * Options of `GatewayHealthModule.forRootAsync`: Nest's `ConfigurableModuleAsyncOptions` (`useFactory` with
 * `inject`, `useClass` or `useExisting` implementing {@link GatewayHealthOptionsFactory}, `imports`).
 */
export type GatewayHealthModuleAsyncOptions = ConfigurableModuleAsyncOptions<GatewayHealthOptions, 'createGatewayHealthOptions'>;

const { ConfigurableModuleClass: ConfigurableGatewayHealthModule } = new ConfigurableModuleBuilder<GatewayHealthOptions>({
  optionsInjectionToken: GATEWAY_HEALTH_OPTIONS,
})
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createGatewayHealthOptions')
  .setExtras({}, (definition) => ({
    ...definition,
    imports: [TerminusModule, ...(definition.imports ?? [])],
    providers: [...(definition.providers ?? []), GatewayHealthIndicator],
    exports: [GatewayHealthIndicator, TerminusModule],
  }))
  .build();

/**
 * Provides the {@link GatewayHealthIndicator} (with terminus' `HealthCheckService`, re-exported) to the module that
 * imports it. The app must also import `GatewayModule`. `forRoot(options)` takes the options up front;
 * `forRootAsync` builds them with a factory, a class or an existing provider.
 */
@Module({})
export class GatewayHealthModule extends ConfigurableGatewayHealthModule {
  static override forRoot(options: GatewayHealthOptions = {}): DynamicModule {
    return super.forRoot(options);
  }

  static override forRootAsync(options: GatewayHealthModuleAsyncOptions): DynamicModule {
    return super.forRootAsync(options);
  }
}
