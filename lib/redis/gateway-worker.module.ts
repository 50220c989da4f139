import { ConfigurableModuleBuilder, Logger, Module, type ConfigurableModuleAsyncOptions, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Cluster } from '../core/cluster/cluster';
import { resolveGatewayName } from '../nest/constants/gateway-tokens';
import { GatewayEventRouter } from '../nest/gateway-event-router';
import { GatewayHandlerExplorer, gatewayHandlerExplorerProvider } from '../nest/gateway-handler.explorer';
import { STREAM_DELIVERY_STATS } from '../core/interfaces/stream-delivery-stats.interface';
import { InMemoryIdentifyQueue } from '../core/queue/in-memory-identify-queue';
import { ShardService } from '../nest/services/shard.service';
import { createRedisClient, type RedisClientHandle } from './create-redis-client';
import { waitForShardCount } from './dispatch-stream-entry';
import { GatewayWorker } from './gateway-worker';
import { validateWorkerOptions, type GatewayWorkerModuleOptions } from './gateway-worker-options.interface';
import { redisKeyPrefix, type RedisConnectionOptions } from './redis-options.interface';
import { WorkerShardCommands } from './worker-shard-commands';

const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN } = new ConfigurableModuleBuilder<GatewayWorkerModuleOptions>({ moduleName: 'GatewayWorker' })
  .setClassMethodName('forRoot')
  .setExtras({ global: false }, (definition, extras) => ({ ...definition, global: extras.global }))
  .build();

/** Injection token of the {@link GatewayWorkerModuleOptions}. */
export const GATEWAY_WORKER_OPTIONS = MODULE_OPTIONS_TOKEN;

const WORKER_REDIS = Symbol('GATEWAY_WORKER_REDIS');
const WORKER_CLUSTER = Symbol('GATEWAY_WORKER_CLUSTER');

/**
 * A worker app of a bot whose gateway processes publish to Redis Streams (`delivery: 'redis-streams'`): no
 * connection to Discord, the same `@OnEvent` handlers (with their guards, interceptors, pipes and filters) run here
 * for the events of the worker's group, and `ShardService` sends commands through the gateway process that owns
 * each shard. Bootstrap waits until a gateway process has published the bot's shard count.
 *
 * ```ts
 * @Module({ imports: [GatewayWorkerModule.forRoot({ redis: { url }, group: 'moderation' })], providers: [ModerationHandlers] })
 * export class WorkerModule {}
 * ```
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: WORKER_REDIS,
      useFactory: async (options: GatewayWorkerModuleOptions): Promise<RedisClientHandle> => {
        validateWorkerOptions(options);
        const logger = new Logger(`GatewayWorker ${options.group}`);
        const handle = createRedisClient(options.redis as RedisConnectionOptions);
        if (handle.owned) handle.client.on('error', (error: Error) => logger.debug(`Redis: ${error.message}`));
        return handle;
      },
      inject: [MODULE_OPTIONS_TOKEN],
    },
    {
      provide: WorkerShardCommands,
      useFactory: (options: GatewayWorkerModuleOptions, redis: RedisClientHandle) => {
        const logger = new Logger(`GatewayWorker ${options.group}`);
        return new WorkerShardCommands(redis.client, options.keyPrefix, options.commandTimeoutMs, (message) => logger.debug(message));
      },
      inject: [MODULE_OPTIONS_TOKEN, WORKER_REDIS],
    },
    {
      // A cluster that owns no shard: it knows the bot's shard count (for guild -> shard), so that ShardService
      // sends every command to the shard's owner.
      provide: WORKER_CLUSTER,
      useFactory: async (options: GatewayWorkerModuleOptions, redis: RedisClientHandle) => {
        const logger = new Logger(`GatewayWorker ${options.group}`);
        const total = await waitForShardCount(redis.client, redisKeyPrefix(options), () => false, (message) => logger.log(message));
        const cluster = new Cluster({
          // Never sent: this cluster runs no shard.
          token: 'worker-app-runs-no-shard',
          intents: 0,
          shards: { total, ownership: 'redis' },
          gatewayUrl: 'wss://gateway.invalid',
          identifyQueue: new InMemoryIdentifyQueue(),
        });
        await cluster.up();
        return cluster;
      },
      inject: [MODULE_OPTIONS_TOKEN, WORKER_REDIS],
    },
    {
      provide: ShardService,
      useFactory: (cluster: Cluster, options: GatewayWorkerModuleOptions, commands: WorkerShardCommands) =>
        new ShardService(cluster, { token: '', intents: 0, commandTimeoutMs: options.commandTimeoutMs }, commands),
      inject: [WORKER_CLUSTER, MODULE_OPTIONS_TOKEN, WorkerShardCommands],
    },
    {
      provide: GatewayEventRouter,
      useFactory: (options: GatewayWorkerModuleOptions) => new GatewayEventRouter(resolveGatewayName(options.gateway, 'gateway')),
      inject: [MODULE_OPTIONS_TOKEN],
    },
    gatewayHandlerExplorerProvider(
      GatewayHandlerExplorer,
      GatewayEventRouter,
      (options: GatewayWorkerModuleOptions) => resolveGatewayName(options.gateway, 'gateway'),
      [MODULE_OPTIONS_TOKEN],
    ),
    {
      provide: GatewayWorker,
      useFactory: (
        options: GatewayWorkerModuleOptions,
        redis: RedisClientHandle,
        router: GatewayEventRouter,
        commands: WorkerShardCommands,
        cluster: Cluster,
      ) => new GatewayWorker(options, redis, router, commands, cluster),
      inject: [MODULE_OPTIONS_TOKEN, WORKER_REDIS, GatewayEventRouter, WorkerShardCommands, WORKER_CLUSTER],
    },
    { provide: STREAM_DELIVERY_STATS, useExisting: GatewayWorker },
  ],
  exports: [ShardService, GatewayWorker, GatewayEventRouter, STREAM_DELIVERY_STATS],
})
export class GatewayWorkerModule extends ConfigurableModuleClass {
  /** Registers the worker with options known up front; they are checked here (a `GatewayOptionsError` names the first invalid one). */
  static forRoot(options: GatewayWorkerModuleOptions & { global?: boolean }): DynamicModule {
    validateWorkerOptions(options);
    return super.forRoot(options);
  }

  /** Registers the worker with options built by a factory, a class or an existing provider (checked at startup). */
  static forRootAsync(options: ConfigurableModuleAsyncOptions<GatewayWorkerModuleOptions> & { global?: boolean }): DynamicModule {
    return super.forRootAsync(options);
  }
}
