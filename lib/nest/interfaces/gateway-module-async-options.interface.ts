import type { ConfigurableModuleAsyncOptions } from '@nestjs/common';
import type { GatewayModuleOptions } from './gateway-module-options.interface';

/** A class that creates the module options, for `forRootAsync({ useClass })`. */
export interface GatewayOptionsFactory {
  createGatewayOptions(): GatewayModuleOptions | Promise<GatewayModuleOptions>;
}

/**
 * Options of `GatewayModule.forRoot` / `forRootAsync` that shape the module rather than the gateway. `forRoot`
 * takes them beside the {@link GatewayModuleOptions}; `forRootAsync` takes them up front, because the injection
 * tokens depend on them.
 */
export interface GatewayModuleExtras {
  /**
   * Name of the gateway (see {@link GatewayModuleOptions.name}). With `forRootAsync`, the factory's options may
   * repeat it, not change it. @defaultValue `'default'`
   */
  name?: string;
  /** Register the module globally: `ShardService` and `ClusterService` are injectable in every module. @defaultValue `false` */
  global?: boolean;
}

/**
 * Options of `GatewayModule.forRootAsync`: Nest's `ConfigurableModuleAsyncOptions` (`useFactory` with `inject`,
 * `useClass` or `useExisting` implementing {@link GatewayOptionsFactory}, `imports`, `provideInjectionTokensFrom`)
 * and the {@link GatewayModuleExtras}.
 */
export interface GatewayModuleAsyncOptions
  extends ConfigurableModuleAsyncOptions<GatewayModuleOptions, 'createGatewayOptions'>,
    GatewayModuleExtras {}
