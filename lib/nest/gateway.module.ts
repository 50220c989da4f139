import { ConfigurableModuleBuilder, Logger, Module, type DynamicModule, type FactoryProvider, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Cluster } from '../core/cluster/cluster';
import { runForwardedShardCall } from '../core/cluster/forwarded-shard-call';
import { validateClusterOptions } from '../core/cluster/validate-cluster-options';
import { GATEWAY_MODULE_OPTIONS } from './constants/gateway-module.constants';
import { getGatewayToken, resolveGatewayName, type GatewayProviderClass } from './constants/gateway-tokens';
import { GatewayOptionsError } from '../core/errors/gateway-options.error';
// Types only from ioredis: this loads nothing of it.
import { keyPrefixProblem } from '../redis/redis-options.interface';
import { DispatchFilter } from '../core/shard/dispatch-filter';
import { GatewayEventRouter } from './gateway-event-router';
import { GatewayHandlerExplorer, gatewayHandlerExplorerProvider } from './gateway-handler.explorer';
import { GatewayLifecycle } from './gateway.lifecycle';
import type { GatewayModuleAsyncOptions, GatewayModuleExtras } from './interfaces/gateway-module-async-options.interface';
import type { GatewayModuleOptions } from './interfaces/gateway-module-options.interface';
import { GATEWAY_SCALE_OUT, type IGatewayScaleOut } from './interfaces/gateway-scale-out.interface';
import { ClusterService } from './services/cluster.service';
import { ShardService } from './services/shard.service';

/**
 * `forRoot` / `forRootAsync` as Nest's `ConfigurableModuleBuilder` makes them (`useFactory`, `useClass`,
 * `useExisting`, `imports`, `inject`, `provideInjectionTokensFrom`); {@link gatewayModuleDefinition} turns the
 * module it builds into one gateway's module.
 */
const { ConfigurableModuleClass: ConfigurableGatewayModule } = new ConfigurableModuleBuilder<GatewayModuleOptions>({
  optionsInjectionToken: GATEWAY_MODULE_OPTIONS,
})
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createGatewayOptions')
  .setExtras<GatewayModuleExtras>({ global: false }, (definition, extras) => gatewayModuleDefinition(definition, extras))
  .build();

/**
 * Keeps the bot connected to Discord's gateway and routes its events to `@OnEvent` methods.
 *
 * ```ts
 * @Module({ imports: [GatewayModule.forRoot({ token: process.env.DISCORD_TOKEN!, intents: GatewayIntentBits.Guilds })] })
 * export class AppModule {}
 * ```
 */
@Module({})
export class GatewayModule extends ConfigurableGatewayModule {
  /**
   * Registers the module with options known up front. They are checked here, so an invalid one throws a
   * {@link GatewayOptionsError} to the caller of `forRoot` (not from inside Nest's startup). With `name`, it is one
   * more gateway (another bot, with its own token) beside the default one: its services are injected with
   * `@InjectShardService(name)` / `@InjectClusterService(name)`, and its events reach
   * `@OnEvent(..., { gateway: name })`. With `global: true`, the services are injectable in every module.
   */
  static override forRoot(options: GatewayModuleOptions & GatewayModuleExtras): DynamicModule {
    const given = options ?? ({} as GatewayModuleOptions);
    const { global, ...rest } = given;
    validateGlobal(global);
    validateClusterOptions(validateModuleOptions(rest, resolveGatewayName(rest.name)));
    return super.forRoot(given);
  }

  /**
   * Registers the module with options built by a factory (`useFactory` with `inject`), a class
   * (`useClass`, implementing {@link GatewayOptionsFactory}) or an existing provider (`useExisting`), with the
   * modules they need in `imports`. The options are checked when they are built, so an invalid one fails the
   * application's startup naming the option.
   */
  static override forRootAsync(options: GatewayModuleAsyncOptions): DynamicModule {
    resolveGatewayName(options.name);
    validateGlobal(options.global);
    if (!options.useFactory && !options.useClass && !options.useExisting) {
      throw new GatewayOptionsError('forRootAsync', 'needs useFactory, useClass or useExisting');
    }
    return super.forRootAsync(options);
  }
}

/**
 * The module of one gateway, from the one `ConfigurableModuleBuilder` builds. Its options provider becomes the
 * gateway's (under {@link getGatewayToken}'s token for the name, holding the options behind {@link hideToken}), and
 * every provider is registered under the gateway's token for its name: the classes themselves for the default
 * gateway, symbols of their own for a named one, so that several gateways live side by side in one application.
 */
function gatewayModuleDefinition(definition: DynamicModule, extras: GatewayModuleExtras): DynamicModule {
  const name = resolveGatewayName(extras.name);
  const token = (base: GatewayProviderClass) => getGatewayToken(base, name);
  const OPTIONS = getGatewayToken(GATEWAY_MODULE_OPTIONS, name);
  const SCALE_OUT = getGatewayToken(GATEWAY_SCALE_OUT, name);
  const optionProviders = (definition.providers ?? []).map((provider) => hideOptionsToken(provider, OPTIONS));
  return {
    ...definition,
    global: extras.global ?? false,
    imports: [DiscoveryModule, ...(definition.imports ?? [])],
    providers: [
      ...optionProviders,
      {
        provide: SCALE_OUT,
        useFactory: (options: GatewayModuleOptions) => createScaleOut(validateModuleOptions(options, name)),
        inject: [OPTIONS],
      },
      {
        provide: token(Cluster),
        useFactory: (options: GatewayModuleOptions, scaleOut: IGatewayScaleOut | null) => {
          const cluster = new Cluster({
            ...validateModuleOptions(options, name),
            ...scaleOut?.clusterDefaults,
            // The options hold it only behind their proxy (see hideToken): the spread above copies ''.
            token: options.token,
            // Decode only what handlers and subscribers ask for; they add their event names at bootstrap.
            dispatchFilter: options.dispatchFilter ?? new DispatchFilter([]),
          });
          scaleOut?.attach(cluster);
          // Calls other processes forward for this one's shards run on the cluster itself.
          scaleOut?.setHandler((method, shardId, args) => runForwardedShardCall(cluster, method, shardId, args));
          return cluster;
        },
        inject: [OPTIONS, SCALE_OUT],
      },
      { provide: token(GatewayEventRouter), useFactory: () => new GatewayEventRouter(name) },
      gatewayHandlerExplorerProvider(token(GatewayHandlerExplorer), token(GatewayEventRouter), () => name),
      {
        provide: token(GatewayLifecycle),
        useFactory: (cluster: Cluster, router: GatewayEventRouter, options: GatewayModuleOptions, scaleOut: IGatewayScaleOut | null) =>
          new GatewayLifecycle(cluster, router, options, scaleOut, name),
        inject: [token(Cluster), token(GatewayEventRouter), OPTIONS, SCALE_OUT],
      },
      {
        provide: token(ShardService),
        useFactory: (cluster: Cluster, options: GatewayModuleOptions, scaleOut: IGatewayScaleOut | null) =>
          new ShardService(cluster, options, scaleOut),
        inject: [token(Cluster), OPTIONS, SCALE_OUT],
      },
      {
        provide: token(ClusterService),
        useFactory: (cluster: Cluster, scaleOut: IGatewayScaleOut | null) => new ClusterService(cluster, scaleOut),
        inject: [token(Cluster), SCALE_OUT],
      },
    ],
    exports: [token(ShardService), token(ClusterService), token(Cluster)],
  };
}

/**
 * The builder's provider of the options, made the gateway's: registered under `provide` and holding the options
 * behind {@link hideToken} (a `useValue` at once, a factory's result once built). Other providers (a `useClass`
 * factory class) are kept as they are.
 */
function hideOptionsToken(provider: Provider, provide: symbol): Provider {
  if (typeof provider !== 'object' || provider.provide !== GATEWAY_MODULE_OPTIONS) return provider;
  if ('useValue' in provider) return { provide, useValue: hideToken(provider.useValue as GatewayModuleOptions) };
  const { useFactory, inject } = provider as FactoryProvider<GatewayModuleOptions | Promise<GatewayModuleOptions>>;
  return { provide, useFactory: async (...args: unknown[]) => hideToken(await useFactory(...args)), inject };
}

/**
 * The options as the module keeps them (the GATEWAY_MODULE_OPTIONS provider): a copy holding `token: ''`, behind a
 * proxy whose `token` reads the real one from a closure and which lists no `token` key. util.inspect (with
 * `showHidden`, `getters`, `showProxy`, at any depth) sees only the copy; JSON.stringify, spreads and
 * `Object.keys` leave `token` out. So a log of the options, or of a provider holding them, never shows the token;
 * `options.token` still reads it.
 */
function hideToken(options: GatewayModuleOptions): GatewayModuleOptions {
  if (typeof options !== 'object' || options === null) return options;
  const token = options.token;
  const copy: GatewayModuleOptions = { ...options, token: '' };
  return new Proxy(copy, {
    get: (target, key, receiver) => (key === 'token' ? token : Reflect.get(target, key, receiver)),
    ownKeys: (target) => Reflect.ownKeys(target).filter((key) => key !== 'token'),
    getOwnPropertyDescriptor: (target, key) => (key === 'token' ? undefined : Reflect.getOwnPropertyDescriptor(target, key)),
  });
}

function validateGlobal(global: unknown): void {
  if (global !== undefined && typeof global !== 'boolean') throw new GatewayOptionsError('global', 'must be a boolean');
}

function validateModuleOptions(options: GatewayModuleOptions, name: string): GatewayModuleOptions {
  if (typeof options !== 'object' || options === null) throw new GatewayOptionsError('options', 'must be an object');
  if (options.name !== undefined && resolveGatewayName(options.name) !== name) {
    throw new GatewayOptionsError('name', `must match the name given to forRootAsync (${name})`);
  }
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
  validateRedisOptions(options);
  return options;
}

/** Checks `redis`, `keyPrefix`, `leaseTtlMs`, `commandTimeoutMs`, `exactlyOnce` and `memberId`, and what they need. */
function validateRedisOptions(options: GatewayModuleOptions): void {
  const redis = options.redis as unknown;
  if (redis !== undefined) validateRedisConnection(redis);
  const shards = options.shards as unknown;
  const distributed = typeof shards === 'object' && shards !== null && 'ownership' in shards;
  if (distributed && redis === undefined) {
    throw new GatewayOptionsError('redis', `is needed by shards: { ownership: 'redis' } (give { url } or { client })`);
  }
  if (options.keyPrefix !== undefined) {
    const problem = keyPrefixProblem(options.keyPrefix);
    if (problem) throw new GatewayOptionsError('keyPrefix', problem);
    if (redis === undefined) throw new GatewayOptionsError('keyPrefix', 'needs redis');
  }
  const needOwnership = (key: string) => {
    if (!distributed) throw new GatewayOptionsError(key, `only applies with shards: { total, ownership: 'redis' }`);
  };
  if (options.leaseTtlMs !== undefined) {
    if (!Number.isInteger(options.leaseTtlMs) || options.leaseTtlMs < 300) throw new GatewayOptionsError('leaseTtlMs', 'must be an integer >= 300');
    needOwnership('leaseTtlMs');
  }
  if (options.commandTimeoutMs !== undefined) {
    if (!Number.isInteger(options.commandTimeoutMs) || options.commandTimeoutMs < 1) {
      throw new GatewayOptionsError('commandTimeoutMs', 'must be an integer >= 1');
    }
    needOwnership('commandTimeoutMs');
  }
  const exactlyOnce = options.exactlyOnce as unknown;
  if (exactlyOnce !== undefined && exactlyOnce !== false) {
    if (exactlyOnce !== true) {
      const ttlMs = (exactlyOnce as { ttlMs?: unknown } | null)?.ttlMs;
      if (typeof exactlyOnce !== 'object' || exactlyOnce === null) throw new GatewayOptionsError('exactlyOnce', 'must be true, false or { ttlMs }');
      if (ttlMs !== undefined && (!Number.isInteger(ttlMs) || (ttlMs as number) < 1000)) {
        throw new GatewayOptionsError('exactlyOnce.ttlMs', 'must be an integer >= 1000');
      }
    }
    if (redis === undefined) throw new GatewayOptionsError('exactlyOnce', 'needs redis');
  }
  if (options.delivery !== undefined && options.delivery !== 'in-process') {
    if (options.delivery !== 'redis-streams') throw new GatewayOptionsError('delivery', `must be 'in-process' or 'redis-streams'`);
    if (redis === undefined) throw new GatewayOptionsError('delivery', `'redis-streams' needs redis`);
    needOwnership('delivery');
  }
  validateStreamsOptions(options.streams);
  if (options.memberId !== undefined) {
    if (typeof options.memberId !== 'string' || options.memberId === '' || options.memberId.includes('|')) {
      throw new GatewayOptionsError('memberId', 'must be a non-empty string without "|"');
    }
    needOwnership('memberId');
  }
}

/** Checks `streams` (the tuning of `delivery: 'redis-streams'`). */
function validateStreamsOptions(streams: unknown): void {
  if (streams === undefined) return;
  if (typeof streams !== 'object' || streams === null) throw new GatewayOptionsError('streams', 'must be an object');
  for (const key of ['maxLen', 'maxBuffered', 'groupRefreshMs', 'statsIntervalMs']) {
    const value = (streams as Record<string, unknown>)[key];
    if (value !== undefined && (!Number.isInteger(value) || (value as number) < 1)) throw new GatewayOptionsError(`streams.${key}`, 'must be an integer >= 1');
  }
}

/** Checks `redis`: exactly one of `{ url }`, `{ nodes }` (Redis Cluster), `{ sentinels, name }` (Sentinel), `{ client }`. */
function validateRedisConnection(redis: unknown): void {
  const forms = '{ url }, { nodes } (Redis Cluster), { sentinels, name } (Redis Sentinel) or { client }';
  if (typeof redis !== 'object' || redis === null) throw new GatewayOptionsError('redis', `must be ${forms}`);
  const given = ['url', 'nodes', 'sentinels', 'client'].filter((key) => key in redis);
  if (given.length !== 1) {
    throw new GatewayOptionsError('redis', `must be ${forms}: ${given.length === 0 ? 'none of them was' : `${given.join(' and ')} were`} given`);
  }
  const value = redis as Record<string, unknown>;
  const optionsObject = (key: string) => {
    const inner = value[key];
    if (inner !== undefined && (typeof inner !== 'object' || inner === null)) throw new GatewayOptionsError(`redis.${key}`, 'must be an object');
  };
  switch (given[0]) {
    case 'client': {
      const client = value.client as { duplicate?: unknown } | null;
      if (typeof client !== 'object' || client === null || typeof client.duplicate !== 'function') {
        throw new GatewayOptionsError('redis.client', 'must be an ioredis client (Redis or Cluster)');
      }
      return;
    }
    case 'url':
      if (typeof value.url !== 'string' || !/^rediss?:\/\/./.test(value.url)) {
        throw new GatewayOptionsError('redis.url', 'must be a redis:// or rediss:// URL (or give redis.nodes, redis.sentinels or redis.client instead)');
      }
      optionsObject('redisOptions');
      return;
    case 'nodes':
      checkRedisNodes(value.nodes, 'redis.nodes', true);
      optionsObject('clusterOptions');
      return;
    default:
      checkRedisNodes(value.sentinels, 'redis.sentinels', false);
      if (typeof value.name !== 'string' || value.name === '') {
        throw new GatewayOptionsError('redis.name', 'must be the name the sentinels monitor the primary under (sentinel monitor <name> ...)');
      }
      optionsObject('redisOptions');
  }
}

/** Checks a non-empty list of `{ host, port }` (or, when `strings` is true, `'host:port'`) Redis addresses. */
function checkRedisNodes(nodes: unknown, option: string, strings: boolean): void {
  const shape = strings ? `{ host, port } or 'host:port'` : '{ host, port }';
  if (!Array.isArray(nodes) || nodes.length === 0) throw new GatewayOptionsError(option, `must be a non-empty array of ${shape}`);
  nodes.forEach((node: unknown, i) => {
    let host: unknown;
    let port: unknown;
    if (strings && typeof node === 'string') {
      const match = /^(.+):(\d+)$/.exec(node);
      [host, port] = match ? [match[1], Number(match[2])] : ['', NaN];
    } else if (typeof node === 'object' && node !== null) {
      ({ host, port } = node as { host?: unknown; port?: unknown });
    }
    if (typeof host !== 'string' || host === '' || !Number.isInteger(port) || (port as number) < 1 || (port as number) > 65_535) {
      throw new GatewayOptionsError(`${option}[${i}]`, `must be ${shape} with a port from 1 to 65535, got ${JSON.stringify(node)}`);
    }
  });
}

/**
 * The Redis parts when `redis` is configured, else null. They are required here, on demand, so that the
 * optional dependency `ioredis` is loaded only by applications that use them.
 */
function createScaleOut(options: GatewayModuleOptions): IGatewayScaleOut | null {
  if (options.redis === undefined) return null;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { RedisGatewayScaleOut } = require('../redis/redis-gateway-scale-out') as typeof import('../redis/redis-gateway-scale-out');
  const logger = new Logger('GatewayRedis');
  return new RedisGatewayScaleOut(
    options,
    (message) => logger.debug(message),
    (message) => logger.warn(message),
  );
}
