import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency, Type } from '@nestjs/common';
import type { GatewayModuleOptions } from './gateway-module-options.interface';

/** A class that creates the module options, for `forRootAsync({ useClass })`. */
export interface GatewayOptionsFactory {
  createGatewayOptions(): GatewayModuleOptions | Promise<GatewayModuleOptions>;
}

/** Options of `GatewayModule.forRootAsync`. */
export interface GatewayModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /**
   * Name of the gateway (see {@link GatewayModuleOptions.name}); given here because the injection tokens depend on
   * it. The factory's options may repeat it, not change it. @defaultValue `'default'`
   */
  name?: string;
  /** Register the module globally. @defaultValue `false` */
  global?: boolean;
  /** Providers injected into `useFactory`. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  useFactory?: (...args: any[]) => GatewayModuleOptions | Promise<GatewayModuleOptions>;
  useClass?: Type<GatewayOptionsFactory>;
  useExisting?: Type<GatewayOptionsFactory>;
}
