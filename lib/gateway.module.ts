import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Cluster } from './cluster/cluster';
import { GATEWAY_MODULE_OPTIONS } from './constants/gateway-module.constants';
import { GatewayOptionsError } from './errors/gateway-options.error';
import { DispatchFilter } from './shard/dispatch-filter';
import { GatewayEventRouter } from './gateway-event-router';
import { GatewayHandlerExplorer } from './gateway-handler.explorer';
import { GatewayLifecycle } from './gateway.lifecycle';
import type {
  GatewayModuleAsyncOptions,
  GatewayModuleOptions,
  GatewayOptionsFactory,
} from './interfaces/gateway-module-options.interface';
import { ClusterService } from './services/cluster.service';
import { ShardService } from './services/shard.service';

/**
 * Keeps the bot connected to Discord's gateway and routes its events to `@OnEvent` methods.
 *
 * ```ts
 * @Module({ imports: [GatewayModule.forRoot({ token: process.env.DISCORD_TOKEN!, intents: GatewayIntentBits.Guilds })] })
 * export class AppModule {}
 * ```
 */
@Module({})
export class GatewayModule {
  /** Registers the module with options known up front. */
  static forRoot(options: GatewayModuleOptions & { global?: boolean }): DynamicModule {
    const { global, ...rest } = options ?? ({} as GatewayModuleOptions);
    return GatewayModule.build([{ provide: GATEWAY_MODULE_OPTIONS, useValue: rest }], [], global);
  }

  /** Registers the module with options built by a factory, a class or an existing provider. */
  static forRootAsync(options: GatewayModuleAsyncOptions): DynamicModule {
    const providers: Provider[] = [];
    if (options.useFactory) {
      providers.push({ provide: GATEWAY_MODULE_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] });
    } else if (options.useClass || options.useExisting) {
      const factoryClass = (options.useClass ?? options.useExisting)!;
      if (options.useClass) providers.push({ provide: factoryClass, useClass: factoryClass });
      providers.push({
        provide: GATEWAY_MODULE_OPTIONS,
        useFactory: (factory: GatewayOptionsFactory) => factory.createGatewayOptions(),
        inject: [factoryClass],
      });
    } else {
      throw new GatewayOptionsError('forRootAsync', 'needs useFactory, useClass or useExisting');
    }
    return GatewayModule.build(providers, options.imports ?? [], options.global);
  }

  private static build(optionProviders: Provider[], imports: DynamicModule['imports'], global = false): DynamicModule {
    return {
      module: GatewayModule,
      global,
      imports: [DiscoveryModule, ...(imports ?? [])],
      providers: [
        ...optionProviders,
        {
          provide: Cluster,
          useFactory: (options: GatewayModuleOptions) =>
            new Cluster({
              ...validateModuleOptions(options),
              // Decode only what handlers and subscribers ask for; they add their event names at bootstrap.
              dispatchFilter: options.dispatchFilter ?? new DispatchFilter([]),
            }),
          inject: [GATEWAY_MODULE_OPTIONS],
        },
        GatewayEventRouter,
        GatewayHandlerExplorer,
        GatewayLifecycle,
        ShardService,
        ClusterService,
      ],
      exports: [ShardService, ClusterService, Cluster],
    };
  }
}

function validateModuleOptions(options: GatewayModuleOptions): GatewayModuleOptions {
  if (typeof options !== 'object' || options === null) throw new GatewayOptionsError('options', 'must be an object');
  for (const key of ['autoConnect', 'awaitReady'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') {
      throw new GatewayOptionsError(key, 'must be a boolean');
    }
  }
  if (options.shutdown !== undefined && options.shutdown !== 'resumable' && options.shutdown !== 'end-sessions') {
    throw new GatewayOptionsError('shutdown', `must be 'resumable' or 'end-sessions'`);
  }
  const maxPending = options.maxPendingHandlersPerShard;
  if (maxPending !== undefined && (!Number.isInteger(maxPending) || maxPending < 2)) {
    throw new GatewayOptionsError('maxPendingHandlersPerShard', 'must be an integer >= 2');
  }
  const cooldown = options.memberRequestCooldownMs;
  if (cooldown !== undefined && (!Number.isInteger(cooldown) || cooldown < 0)) {
    throw new GatewayOptionsError('memberRequestCooldownMs', 'must be an integer >= 0');
  }
  return options;
}
