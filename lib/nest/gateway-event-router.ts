import { ForbiddenException, Injectable, Logger } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import type { Cluster } from '../core/cluster/cluster';
import { DispatchDedupeGate } from '../core/cluster/dispatch-dedupe-gate';
import { DEFAULT_GATEWAY_NAME } from './constants/gateway-tokens';
import { ANY_GATEWAY_EVENT } from './decorators/on-event.decorator';
import type { GatewayDispatch } from '../core/interfaces/gateway-dispatch.interface';
import type { GatewayEventContext } from './interfaces/gateway-event-context.interface';
import type { IDispatchDeduplicator } from '../core/interfaces/dispatch-deduplicator.interface';
import type { IHandlingTracker } from '../core/interfaces/handling-tracker.interface';

/** One registered handler: calls the method (through guards, interceptors, pipes and filters when present). */
export interface GatewayHandler {
  /** `ClassName.method`, for logs. */
  readonly name: string;
  /** Runs the handler for one event. */
  invoke(data: unknown, context: GatewayEventContext): unknown;
}

/** One handler run, reported to {@link GatewayRouterObserver.handlerSettled} once it has returned or settled. */
export interface GatewayHandlerOutcome {
  /** `ClassName.method`. */
  handler: string;
  event: string;
  shardId: number;
  sequence: number;
  /** From the call to the return (synchronous handlers) or to the settling of the returned promise, ms. */
  durationMs: number;
  /** What the handler threw or rejected with; null when it succeeded. */
  error: Error | null;
  /** A guard refused the event (`error` is the `ForbiddenException`): the handler did not run. */
  skipped: boolean;
}

/** One routed event, reported to {@link GatewayRouterObserver.eventSettled} once every handler has settled. */
export interface GatewayEventOutcome {
  event: string;
  shardId: number;
  sequence: number;
  /** Handlers the event was delivered to (0 when none is registered for it). */
  handlers: number;
  /** Errors of the handlers that failed (guard refusals excluded). */
  errors: Error[];
}

/**
 * Listener of {@link GatewayEventRouter.observe}: metrics, tests that wait for handlers, tracing. Both methods are
 * optional and called synchronously; they must not throw. Without observers the router measures nothing.
 */
export interface GatewayRouterObserver {
  handlerSettled?(outcome: GatewayHandlerOutcome): void;
  eventSettled?(outcome: GatewayEventOutcome): void;
}

/**
 * Routes each dispatch of a cluster to the handlers registered for its name, and to the handlers of `'*'`. Events
 * nobody handles cost one map lookup. A handler that throws or rejects is logged with the event name and shard id;
 * the other handlers and the shard go on.
 */
@Injectable()
export class GatewayEventRouter implements IHandlingTracker {
  private readonly logger: Logger;
  private readonly handlers = new Map<string, GatewayHandler[]>();
  private wildcard: GatewayHandler[] | null = null;
  /** Per event name: its own handlers, then those of `'*'` (built at registration, so routing allocates nothing). */
  private readonly routes = new Map<string, GatewayHandler[]>();
  private readonly pending = new Map<number, number>();
  private subscription: Subscription | null = null;
  private cluster: Cluster | null = null;
  private maxPending = 1000;
  private observers: GatewayRouterObserver[] = [];
  private totalPending = 0;
  private idleWaiters: (() => void)[] = [];
  /** Per shard: sequences whose handling has not settled (waiting for a claim, or a handler promise pending), with a count. */
  private readonly unsettled = new Map<number, Map<number, number>>();
  private gate: DispatchDedupeGate | null = null;

  /** @param gateway - name of the gateway whose events it routes (in its log context) @defaultValue `'default'` */
  constructor(readonly gateway: string = DEFAULT_GATEWAY_NAME) {
    this.logger = new Logger(gateway === DEFAULT_GATEWAY_NAME ? 'GatewayEventRouter' : `GatewayEventRouter ${gateway}`);
  }

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

  /**
   * Adds an observer of handler runs and routed events; returns the function that removes it. Observers see
   * every event that reaches the router, with or without handlers (events the dispatch filter skips never do).
   */
  observe(observer: GatewayRouterObserver): () => void {
    this.observers = [...this.observers, observer];
    return () => {
      this.observers = this.observers.filter((o) => o !== observer);
    };
  }

  /** Resolves once no handler promise is pending on any shard (at once when none is). */
  idle(): Promise<void> {
    if (this.totalPending === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Registers a handler for an event name; `'*'` registers it for every dispatch. */
  register(event: string, handler: GatewayHandler): void {
    if (event === ANY_GATEWAY_EVENT) this.wildcard = [...(this.wildcard ?? []), handler];
    const list = this.handlers.get(event);
    if (list) list.push(handler);
    else this.handlers.set(event, [handler]);
    this.routes.clear();
    for (const [name, own] of this.handlers) if (name !== ANY_GATEWAY_EVENT) this.routes.set(name, [...own, ...(this.wildcard ?? [])]);
  }

  /** Event names that have at least one handler (`'*'` included when a handler receives every dispatch). */
  events(): string[] {
    return [...this.handlers.keys()];
  }

  /** True when a handler is registered for `'*'`: the shards must then decode every event. */
  get receivesAll(): boolean {
    return this.wildcard !== null;
  }

  /**
   * Starts routing the cluster's events, and tells the cluster which events are still being handled (so that it
   * saves sequences below them). With a deduplicator, each event is first claimed through it and handled only when
   * the claim is this process's (exactly-once mode).
   */
  attach(cluster: Cluster, deduplicator: IDispatchDeduplicator | null = null): void {
    this.detach();
    this.cluster = cluster;
    cluster.trackHandling(this);
    const gate = deduplicator
      ? new DispatchDedupeGate(
          deduplicator,
          (event, claimed) => {
            try {
              if (claimed) this.routeSafely(event);
            } finally {
              this.release(event.shardId, event.s);
            }
          },
          (error) => this.logger.warn(`Exactly-once claims failed (${error.message}); events are handled without them and may repeat`),
        )
      : null;
    this.gate = gate;
    this.subscription = cluster.dispatch$.subscribe((event) => {
      if (!gate) {
        this.routeSafely(event);
        return;
      }
      this.hold(event.shardId, event.s);
      gate.push(event);
    });
  }

  /** Stops routing. */
  detach(): void {
    this.subscription?.unsubscribe();
    this.subscription = null;
    this.cluster?.trackHandling(null);
    this.cluster = null;
    this.gate = null;
  }

  /** The lowest sequence of a shard whose handling has not settled (a pending handler promise or claim); null when none. */
  oldestUnsettled(shardId: number): number | null {
    const pending = this.unsettled.get(shardId);
    if (!pending) return null;
    let oldest: number | null = null;
    for (const sequence of pending.keys()) if (oldest === null || sequence < oldest) oldest = sequence;
    return oldest;
  }

  private routeSafely(event: GatewayDispatch): void {
    // Nothing an event causes may end this subscription (RxJS would report the error as unhandled).
    try {
      this.route(event);
    } catch (error) {
      this.logger.error(`Routing ${event.t} (shard ${event.shardId}, sequence ${event.s}) failed: ${describeError(error)}`);
    }
  }

  private hold(shardId: number, sequence: number): void {
    let pending = this.unsettled.get(shardId);
    if (!pending) this.unsettled.set(shardId, (pending = new Map()));
    pending.set(sequence, (pending.get(sequence) ?? 0) + 1);
  }

  private release(shardId: number, sequence: number): void {
    const pending = this.unsettled.get(shardId);
    const count = pending?.get(sequence);
    if (!pending || count === undefined) return;
    if (count > 1) {
      pending.set(sequence, count - 1);
      return;
    }
    pending.delete(sequence);
    if (pending.size === 0) this.unsettled.delete(shardId);
    this.cluster?.sequenceHandled(shardId);
  }

  /** Delivers one event to its handlers. */
  route(event: GatewayDispatch): void {
    const list = this.routes.get(event.t) ?? this.wildcard ?? undefined;
    if (this.observers.length > 0) {
      this.routeObserved(event, list ?? []);
      return;
    }
    if (!list) return;
    const context: GatewayEventContext = { event: event.t, shardId: event.shardId, sequence: event.s, sessionId: event.sessionId ?? null };
    for (const handler of list) {
      try {
        const result = handler.invoke(event.d, context);
        if (result && typeof (result as Promise<unknown>).then === 'function') this.track(result as Promise<unknown>, handler, context);
      } catch (error) {
        this.report(handler, context, error);
      }
    }
  }

  /**
   * Delivers one event to its handlers, with `extra` added to their context, and resolves once every handler has
   * settled (errors are logged and reported in the outcome, never thrown): for consumers that acknowledge an event
   * after handling it (worker apps).
   */
  routeSettled(event: GatewayDispatch, extra: Partial<GatewayEventContext> = {}): Promise<GatewayEventOutcome> {
    return new Promise((resolve) => {
      try {
        this.routeObserved(event, this.routes.get(event.t) ?? this.wildcard ?? [], extra, resolve);
      } catch (error) {
        this.logger.error(`Routing ${event.t} (shard ${event.shardId}, sequence ${event.s}) failed: ${describeError(error)}`);
        resolve({ event: event.t, shardId: event.shardId, sequence: event.s, handlers: 0, errors: [error instanceof Error ? error : new Error(safeString(error))] });
      }
    });
  }

  /** `route` with observers: times each handler and reports each handler run and the event once all settle. */
  private routeObserved(
    event: GatewayDispatch,
    list: GatewayHandler[],
    extra?: Partial<GatewayEventContext>,
    settled?: (outcome: GatewayEventOutcome) => void,
  ): void {
    const context: GatewayEventContext = { ...extra, event: event.t, shardId: event.shardId, sequence: event.s, sessionId: event.sessionId ?? null };
    const errors: Error[] = [];
    let left = list.length + 1;
    const done = () => {
      if (--left > 0) return;
      const outcome: GatewayEventOutcome = { event: event.t, shardId: event.shardId, sequence: event.s, handlers: list.length, errors };
      this.notify((observer) => observer.eventSettled?.(outcome));
      settled?.(outcome);
    };
    for (const handler of list) {
      const start = performance.now();
      const finish = (error: unknown) => {
        const err = error === undefined ? null : error instanceof Error ? error : new Error(safeString(error));
        const skipped = err instanceof ForbiddenException;
        if (err && !skipped) errors.push(err);
        const outcome: GatewayHandlerOutcome = { handler: handler.name, ...context, durationMs: performance.now() - start, error: err, skipped };
        this.notify((observer) => observer.handlerSettled?.(outcome));
        done();
      };
      try {
        const result = handler.invoke(event.d, context);
        if (result && typeof (result as Promise<unknown>).then === 'function') this.track(result as Promise<unknown>, handler, context, finish);
        else finish(undefined);
      } catch (error) {
        this.report(handler, context, error);
        finish(error ?? new Error('undefined thrown'));
      }
    }
    done();
  }

  /** Counts a pending handler promise against its shard, pausing and resuming the shard's socket. */
  private track(
    promise: Promise<unknown>,
    handler: GatewayHandler,
    context: GatewayEventContext,
    onSettled?: (error: unknown) => void,
  ): void {
    const shardId = context.shardId;
    const count = (this.pending.get(shardId) ?? 0) + 1;
    this.pending.set(shardId, count);
    this.totalPending++;
    this.hold(shardId, context.sequence);
    if (count === this.maxPending) this.cluster?.pause(shardId, 'router');
    const settle = () => {
      this.release(shardId, context.sequence);
      const left = (this.pending.get(shardId) ?? 1) - 1;
      this.pending.set(shardId, left);
      if (left === Math.floor(this.maxPending / 2)) this.cluster?.resume(shardId, 'router');
      if (--this.totalPending === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    };
    promise.then(
      () => {
        settle();
        onSettled?.(undefined);
      },
      (error) => {
        settle();
        this.report(handler, context, error);
        onSettled?.(error ?? new Error('undefined rejection'));
      },
    );
  }

  /** Calls every observer; one that throws is logged and the others still run. */
  private notify(call: (observer: GatewayRouterObserver) => void): void {
    for (const observer of this.observers) {
      try {
        call(observer);
      } catch (error) {
        this.logger.error(`A router observer threw: ${describeError(error)}`);
      }
    }
  }

  private report(handler: GatewayHandler, context: GatewayEventContext, error: unknown): void {
    const err = error instanceof Error ? error : new Error(safeString(error));
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

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : safeString(error);
}

/** `String(value)`, or a placeholder when converting throws (an object with a throwing `toString`). */
function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return `[unprintable ${typeof value}]`;
  }
}
