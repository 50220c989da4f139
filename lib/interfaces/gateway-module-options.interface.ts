import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency, Type } from '@nestjs/common';
import type { ClusterOptions } from './cluster-options.interface';

/**
 * Options of `GatewayModule`: every {@link ClusterOptions} field, plus how the module starts and stops.
 */
export interface GatewayModuleOptions extends ClusterOptions {
  /** Connect the shards when the application bootstraps. @defaultValue `true` */
  autoConnect?: boolean;
  /**
   * Make application bootstrap wait until every shard is ready (so a fatal error fails startup).
   * With `false`, shards connect in the background and failures are logged. @defaultValue `true`
   */
  awaitReady?: boolean;
  /**
   * What application shutdown does: `'resumable'` closes the shards with a non-1000 code and saves their
   * sessions in the session store, so the next start resumes; `'end-sessions'` closes with 1000 (bot offline).
   * @defaultValue `'resumable'`
   */
  shutdown?: 'resumable' | 'end-sessions';
  /**
   * Handler promises allowed to be pending per shard; at the limit the shard stops reading its socket (heartbeats
   * go on) until half have settled, so slow handlers cannot grow memory without bound. @defaultValue `1000`
   */
  maxPendingHandlersPerShard?: number;
  /** Minimum time between two full-list member requests for one guild, ms (Discord allows one per 30 s). @defaultValue `30000` */
  memberRequestCooldownMs?: number;
}

/** A class that creates the module options, for `forRootAsync({ useClass })`. */
export interface GatewayOptionsFactory {
  createGatewayOptions(): GatewayModuleOptions | Promise<GatewayModuleOptions>;
}

/** Options of `GatewayModule.forRootAsync`. */
export interface GatewayModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Register the module globally. @defaultValue `false` */
  global?: boolean;
  /** Providers injected into `useFactory`. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  useFactory?: (...args: any[]) => GatewayModuleOptions | Promise<GatewayModuleOptions>;
  useClass?: Type<GatewayOptionsFactory>;
  useExisting?: Type<GatewayOptionsFactory>;
}
