import { Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import type { Cluster } from '../core/cluster/cluster';
import { GatewayEventRouter } from '../nest/gateway-event-router';
import type { IStreamDeliveryStats, StreamDeliveryReport } from '../core/interfaces/stream-delivery-stats.interface';
import { closeRedisClient, type RedisClientHandle } from './create-redis-client';
import type { GatewayWorkerModuleOptions } from './gateway-worker-options.interface';
import { RedisStreamConsumer, type StreamConsumerStats } from './redis-stream-consumer';
import type { StreamGroupStats } from './stream-group-stats';
import type { WorkerShardCommands } from './worker-shard-commands';

/**
 * The running worker of a `GatewayWorkerModule` app (injectable): consumes the group's streams from application
 * bootstrap to shutdown and routes each event through the app's `@OnEvent` handlers, with their guards,
 * interceptors, pipes and filters; the context also carries `entryId`, `idempotencyKey` and `receivedAt`.
 */
@Injectable()
export class GatewayWorker implements OnApplicationBootstrap, BeforeApplicationShutdown, IStreamDeliveryStats {
  private readonly logger: Logger;
  private consumer: RedisStreamConsumer | null = null;

  constructor(
    private readonly options: GatewayWorkerModuleOptions,
    private readonly redis: RedisClientHandle,
    private readonly router: GatewayEventRouter,
    private readonly commands: WorkerShardCommands,
    private readonly cluster: Cluster,
  ) {
    this.logger = new Logger(`GatewayWorker ${options.group}`);
  }

  /** The worker group. */
  get group(): string {
    return this.options.group;
  }

  /** This worker's name in the group (null before bootstrap). */
  get consumerName(): string | null {
    return this.consumer?.consumer ?? null;
  }

  /** Counters of this worker (handled, acknowledged, malformed, duplicates, claimed, in flight). */
  stats(): StreamConsumerStats {
    return this.consumer?.stats() ?? { handled: 0, acknowledged: 0, malformed: 0, duplicates: 0, claimed: 0, inFlight: 0 };
  }

  /** The group's lag, pending entries and cap drops per shard stream, read from Redis now. */
  groupStats(): Promise<StreamGroupStats[]> {
    return this.consumer?.groupStats() ?? Promise.resolve([]);
  }

  async deliveryReport(): Promise<StreamDeliveryReport> {
    const groups = await this.groupStats();
    return { role: 'worker', counters: { ...this.stats() }, groups };
  }

  async onApplicationBootstrap(): Promise<void> {
    const events = this.router.receivesAll ? ['*'] : this.router.events();
    if (events.length === 0) this.logger.warn('no @OnEvent handler in this app: the group wants no event');
    this.consumer = new RedisStreamConsumer({
      ...this.options,
      client: this.redis.client,
      events,
      handle: (event, delivery) =>
        this.router.routeSettled(event, { entryId: delivery.entryId, idempotencyKey: delivery.idempotencyKey, receivedAt: event.receivedAt }),
      log: (message) => this.logger.debug(message),
      warn: (message) => this.logger.warn(message),
    });
    await this.consumer.start();
    this.logger.log(`consuming ${this.consumer.shards} shard streams as ${this.consumer.consumer} (${events.join(', ') || 'no event'})`);
  }

  async beforeApplicationShutdown(): Promise<void> {
    try {
      await this.consumer?.stop();
      await this.commands.close();
      await this.cluster.down();
    } finally {
      if (this.redis.owned) await closeRedisClient(this.redis.client);
    }
  }
}
