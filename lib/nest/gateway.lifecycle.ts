import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { Cluster } from '../core/cluster/cluster';
import { GATEWAY_MODULE_OPTIONS } from './constants/gateway-module.constants';
import { DEFAULT_GATEWAY_NAME } from './constants/gateway-tokens';
import { GatewayFatalError } from '../core/errors/gateway-fatal.error';
import { MalformedPayloadError } from '../core/errors/malformed-payload.error';
import { InProcessDelivery } from '../core/cluster/in-process-delivery';
import { GatewayEventRouter } from './gateway-event-router';
import type { IDispatchDelivery } from '../core/interfaces/dispatch-delivery.interface';
import type { GatewayModuleOptions } from './interfaces/gateway-module-options.interface';
import { GATEWAY_SCALE_OUT, type IGatewayScaleOut } from './interfaces/gateway-scale-out.interface';
import { ShardState } from '../core/shard/shard-state';

/**
 * Connects the cluster when the application bootstraps and closes it at shutdown (resumably by default, so the
 * saved sessions let the next start resume). Bridges the cluster's debug lines and errors to Nest's `Logger`,
 * with one context per shard.
 */
@Injectable()
export class GatewayLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger: Logger;
  private readonly shardLoggers = new Map<number, Logger>();
  private readonly subscriptions: Subscription[] = [];
  private readonly delivery: IDispatchDelivery;

  constructor(
    private readonly cluster: Cluster,
    private readonly router: GatewayEventRouter,
    @Inject(GATEWAY_MODULE_OPTIONS) private readonly options: GatewayModuleOptions,
    @Optional() @Inject(GATEWAY_SCALE_OUT) private readonly scaleOut: IGatewayScaleOut | null = null,
    /** Name of the gateway, in the log contexts of a named one (`GatewayModule support`, `Shard 0 support`). */
    private readonly gateway: string = DEFAULT_GATEWAY_NAME,
  ) {
    this.logger = new Logger(this.context('GatewayModule'));
    this.delivery = scaleOut?.delivery ?? new InProcessDelivery();
  }

  async onApplicationBootstrap(): Promise<void> {
    this.subscriptions.push(
      this.cluster.debug$.subscribe(({ shardId, message }) => this.loggerFor(shardId).debug(message)),
      this.cluster.error$.subscribe((error) => {
        const shardId = error instanceof GatewayFatalError || error instanceof MalformedPayloadError ? error.shardId : null;
        if (error instanceof GatewayFatalError) this.loggerFor(shardId).error(error.message);
        else this.loggerFor(shardId).warn(error.message);
      }),
      this.cluster.state$.subscribe(({ shardId, state }) => {
        if (state === ShardState.Ready) this.loggerFor(shardId).log('ready');
      }),
    );
    this.router.setMaxPendingPerShard(this.options.maxPendingHandlersPerShard ?? 1000);
    if (this.router.receivesAll) this.cluster.dispatchFilter?.allowAll();
    else this.cluster.dispatchFilter?.add(...this.router.events());
    this.router.attach(this.cluster, this.scaleOut?.deduplicator ?? null);
    this.delivery.attach(this.cluster, this.router);
    if (this.options.autoConnect === false) return;
    // With shard ownership, the cluster starts empty and this process then claims its share of the shards.
    const up = this.cluster.up().then(() => this.scaleOut?.start());
    if (this.options.awaitReady === false) {
      up.catch((error: Error) => this.logger.error(`The gateway failed to start: ${error.message}`));
      return;
    }
    await up;
  }

  async beforeApplicationShutdown(): Promise<void> {
    try {
      // Hand the shards owned here over first (sessions saved, leases released), then close whatever is left.
      await this.scaleOut?.stop(this.options.shutdown ?? 'resumable');
      if (this.cluster.total > 0) {
        if (this.options.shutdown === 'end-sessions') await this.cluster.down();
        else await this.cluster.downResumable();
      }
    } finally {
      this.router.detach();
      await this.delivery.detach();
      for (const subscription of this.subscriptions.splice(0)) subscription.unsubscribe();
      await this.scaleOut?.close();
    }
  }

  private loggerFor(shardId: number | null): Logger {
    if (shardId === null) return this.logger;
    let logger = this.shardLoggers.get(shardId);
    if (!logger) {
      logger = new Logger(this.context(`Shard ${shardId}`));
      this.shardLoggers.set(shardId, logger);
    }
    return logger;
  }

  private context(base: string): string {
    return this.gateway === DEFAULT_GATEWAY_NAME ? base : `${base} ${this.gateway}`;
  }
}
