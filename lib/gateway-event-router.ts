import { ForbiddenException, Injectable, Logger } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import type { Cluster } from './cluster/cluster';
import type { GatewayDispatch } from './interfaces/gateway-dispatch.interface';
import type { GatewayEventContext } from './interfaces/gateway-event-context.interface';

/** One registered handler: calls the method (through guards, interceptors, pipes and filters when present). */
export interface GatewayHandler {
  /** `ClassName.method`, for logs. */
  readonly name: string;
  /** Runs the handler for one event. */
  invoke(data: unknown, context: GatewayEventContext): unknown;
}

/**
 * Routes each dispatch of a cluster to the handlers registered for its name. Events nobody handles cost one
 * map lookup. A handler that throws or rejects is logged with the event name and shard id; the other handlers
 * and the shard go on.
 */
@Injectable()
export class GatewayEventRouter {
  private readonly logger = new Logger('GatewayEventRouter');
  private readonly handlers = new Map<string, GatewayHandler[]>();
  private readonly pending = new Map<number, number>();
  private subscription: Subscription | null = null;
  private cluster: Cluster | null = null;
  private maxPending = 1000;

  /**
   * Handler promises allowed to be pending per shard. When a shard reaches it, reading its socket pauses until
   * half of them have settled. @defaultValue `1000`
   */
  setMaxPendingPerShard(limit: number): void {
    this.maxPending = limit;
  }

  /** Handler promises still pending, per shard id. */
  pendingByShard(): Record<number, number> {
    return Object.fromEntries(this.pending);
  }

  /** Registers a handler for an event name. */
  register(event: string, handler: GatewayHandler): void {
    const list = this.handlers.get(event);
    if (list) list.push(handler);
    else this.handlers.set(event, [handler]);
  }

  /** Event names that have at least one handler. */
  events(): string[] {
    return [...this.handlers.keys()];
  }

  /** Starts routing the cluster's events. */
  attach(cluster: Cluster): void {
    this.detach();
    this.cluster = cluster;
    this.subscription = cluster.dispatch$.subscribe((event) => this.route(event));
  }

  /** Stops routing. */
  detach(): void {
    this.subscription?.unsubscribe();
    this.subscription = null;
    this.cluster = null;
  }

  /** Delivers one event to its handlers. */
  route(event: GatewayDispatch): void {
    const list = this.handlers.get(event.t);
    if (!list) return;
    const context: GatewayEventContext = { event: event.t, shardId: event.shardId, sequence: event.s };
    for (const handler of list) {
      try {
        const result = handler.invoke(event.d, context);
        if (result && typeof (result as Promise<unknown>).then === 'function') this.track(result as Promise<unknown>, handler, context);
      } catch (error) {
        this.report(handler, context, error);
      }
    }
  }

  /** Counts a pending handler promise against its shard, pausing and resuming the shard's socket. */
  private track(promise: Promise<unknown>, handler: GatewayHandler, context: GatewayEventContext): void {
    const shardId = context.shardId;
    const count = (this.pending.get(shardId) ?? 0) + 1;
    this.pending.set(shardId, count);
    if (count === this.maxPending) this.cluster?.pause(shardId);
    const settle = () => {
      const left = (this.pending.get(shardId) ?? 1) - 1;
      this.pending.set(shardId, left);
      if (left === Math.floor(this.maxPending / 2)) this.cluster?.resume(shardId);
    };
    promise.then(settle, (error) => {
      settle();
      this.report(handler, context, error);
    });
  }

  private report(handler: GatewayHandler, context: GatewayEventContext, error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    if (err instanceof ForbiddenException) {
      this.logger.debug(`Handler ${handler.name} skipped ${context.event} (shard ${context.shardId}): ${err.message}`);
      return;
    }
    this.logger.error(
      `Handler ${handler.name} failed on ${context.event} (shard ${context.shardId}, sequence ${context.sequence}): ${err.message}`,
      err.stack,
    );
  }
}
