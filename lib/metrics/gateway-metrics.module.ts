import { ConfigurableModuleBuilder, Module, type ConfigurableModuleAsyncOptions, type DynamicModule } from '@nestjs/common';
import { GATEWAY_METRICS_OPTIONS, GatewayMetrics, type GatewayMetricsOptions } from './gateway-metrics';

/** Options of `GatewayMetricsModule.forRoot` / `forRootAsync` that shape the module rather than the metrics. */
export interface GatewayMetricsModuleExtras {
  /** Register the module globally: `GatewayMetrics` is injectable in every module. @defaultValue `false` */
  global?: boolean;
}

/** A class that creates the metrics options, for `GatewayMetricsModule.forRootAsync({ useClass })`. */
export interface GatewayMetricsOptionsFactory {
  createGatewayMetricsOptions(): GatewayMetricsOptions | Promise<GatewayMetricsOptions>;
}

/**
 * Options of `GatewayMetricsModule.forRootAsync`: Nest's `ConfigurableModuleAsyncOptions` (`useFactory` with
 * `inject`, `useClass` or `useExisting` implementing {@link GatewayMetricsOptionsFactory}, `imports`) and `global`.
 */
export interface GatewayMetricsModuleAsyncOptions
  extends ConfigurableModuleAsyncOptions<GatewayMetricsOptions, 'createGatewayMetricsOptions'>,
    GatewayMetricsModuleExtras {}

const { ConfigurableModuleClass: ConfigurableGatewayMetricsModule } = new ConfigurableModuleBuilder<GatewayMetricsOptions>({
  optionsInjectionToken: GATEWAY_METRICS_OPTIONS,
})
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createGatewayMetricsOptions')
  .setExtras<GatewayMetricsModuleExtras>({ global: false }, (definition, extras) => ({
    ...definition,
    global: extras.global ?? false,
    providers: [...(definition.providers ?? []), GatewayMetrics],
    exports: [GatewayMetrics],
  }))
  .build();

/**
 * Provides {@link GatewayMetrics} to the module that imports it. The app must also import `GatewayModule`.
 * `forRoot(options)` takes the options up front; `forRootAsync` builds them with a factory, a class or an existing
 * provider (for a registry another module provides, say).
 */
@Module({})
export class GatewayMetricsModule extends ConfigurableGatewayMetricsModule {
  static override forRoot(options: GatewayMetricsOptions & GatewayMetricsModuleExtras = {}): DynamicModule {
    return super.forRoot(options);
  }

  static override forRootAsync(options: GatewayMetricsModuleAsyncOptions): DynamicModule {
    return super.forRootAsync(options);
  }
}
