import { Injectable, Logger, type FactoryProvider, type InjectionToken, type OnModuleInit } from '@nestjs/common';
import {
  EXCEPTION_FILTERS_METADATA,
  GUARDS_METADATA,
  INTERCEPTORS_METADATA,
  PIPES_METADATA,
} from '@nestjs/common/constants';
import { ApplicationConfig, ContextIdFactory, DiscoveryService, ExternalContextCreator, MetadataScanner, ModuleRef } from '@nestjs/core';
import {
  GATEWAY_CONTEXT_TYPE,
  GATEWAY_PARAMS_METADATA,
  GatewayParamtype,
  ON_EVENT_METADATA,
} from './constants/gateway-module.constants';
import { Cluster } from '../core/cluster/cluster';
import { DEFAULT_GATEWAY_NAME, getGatewayToken } from './constants/gateway-tokens';
import type { OnEventBinding } from './decorators/on-event.decorator';
import { GatewayEventRouter, type GatewayHandler } from './gateway-event-router';
import type { GatewayEventContext } from './interfaces/gateway-event-context.interface';

/** Maps `@EventData()` / `@EventContext()` parameters to the handler's arguments. */
const paramsFactory = {
  exchangeKeyForValue(type: number, data: unknown, args: unknown[]): unknown {
    const value = type === GatewayParamtype.DATA ? args[0] : type === GatewayParamtype.CONTEXT ? args[1] : undefined;
    return typeof data === 'string' && value && typeof value === 'object' ? (value as Record<string, unknown>)[data] : value;
  },
};

/** Handlers already warned about, per app (its `DiscoveryService`). */
const WARNED = new WeakMap<object, Set<string>>();

/** Parameter metadata used when a handler has no parameter decorators: `(data, context)`. */
const DEFAULT_PARAMS = {
  [`${GatewayParamtype.DATA}:0`]: { index: 0, data: undefined, pipes: [] },
  [`${GatewayParamtype.CONTEXT}:1`]: { index: 1, data: undefined, pipes: [] },
};

/** A provider or controller as `DiscoveryService` lists it (Nest exports its type only through that service). */
type InstanceWrapper = ReturnType<DiscoveryService['getProviders']>[number];

type Enhancer = 'guards' | 'interceptors' | 'pipes' | 'filters';

const ENHANCER_METADATA: Record<Enhancer, string> = {
  guards: GUARDS_METADATA,
  interceptors: INTERCEPTORS_METADATA,
  pipes: PIPES_METADATA,
  filters: EXCEPTION_FILTERS_METADATA,
};

/**
 * Finds the `@OnEvent` methods of one gateway (those whose `gateway` option names it) on every provider and
 * controller once, at module init, and registers them with that gateway's router. Handlers run through Nest's guards, interceptors, pipes and exception filters, with context type
 * `'discord-gateway'`. Request-scoped providers get a fresh instance per event (the event context is their
 * `REQUEST`).
 */
@Injectable()
export class GatewayHandlerExplorer implements OnModuleInit {
  private readonly logger = new Logger('GatewayModule');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly contextCreator: ExternalContextCreator,
    private readonly moduleRef: ModuleRef,
    /** The application's global enhancers (`useGlobalGuards`, `APP_GUARD`...). */
    private readonly config: ApplicationConfig,
    private readonly router: GatewayEventRouter,
    /** Name of the gateway whose handlers it registers. @defaultValue `'default'` */
    private readonly gateway: string = DEFAULT_GATEWAY_NAME,
  ) {}

  onModuleInit(): void {
    let count = 0;
    const wrappers = [...this.discovery.getProviders(), ...this.discovery.getControllers()];
    for (const wrapper of wrappers) {
      const prototype = wrapper.metatype && !wrapper.isAlias ? (wrapper.metatype as { prototype?: object }).prototype : undefined;
      if (!prototype || wrapper.isNotMetatype) continue;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const bindings: OnEventBinding[] | undefined = Reflect.getMetadata(ON_EVENT_METADATA, (prototype as any)[method]);
        for (const binding of bindings ?? []) this.checkGatewayExists(binding.gateway, `${wrapper.name as string}.${method}`);
        const events = bindings?.filter((b) => b.gateway === this.gateway).map((b) => b.event) ?? [];
        if (events.length === 0) continue;
        const handler = this.createHandler(wrapper, method);
        for (const event of events) this.router.register(event, handler);
        count++;
      }
    }
    const on = this.gateway === DEFAULT_GATEWAY_NAME ? '' : ` on gateway ${this.gateway}`;
    this.logger.log(`${count} gateway event handler(s) for ${this.router.events().length} event name(s)${on}`);
  }

  /**
   * Warns (once per app and handler) about a handler bound to a gateway the app does not register: its events
   * would never come.
   */
  private checkGatewayExists(gateway: string, handler: string): void {
    if (gateway === this.gateway) return;
    let warned = WARNED.get(this.discovery);
    if (!warned) WARNED.set(this.discovery, (warned = new Set()));
    if (warned.has(`${gateway}:${handler}`)) return;
    try {
      this.moduleRef.get(getGatewayToken(Cluster, gateway), { strict: false });
    } catch {
      warned.add(`${gateway}:${handler}`);
      this.logger.warn(`${handler} listens to gateway "${gateway}", which this app does not register: it will get no event`);
    }
  }

  /** True when the handler, its class or the application applies enhancers of this kind. */
  private usesEnhancer(enhancer: Enhancer, metatype: object, callback: object): boolean {
    const key = ENHANCER_METADATA[enhancer];
    const local = [Reflect.getMetadata(key, callback), Reflect.getMetadata(key, metatype)];
    if (local.some((list) => Array.isArray(list) && list.length > 0)) return true;
    const config = this.config;
    const global = {
      guards: [config.getGlobalGuards(), config.getGlobalRequestGuards()],
      interceptors: [config.getGlobalInterceptors(), config.getGlobalRequestInterceptors()],
      pipes: [config.getGlobalPipes(), config.getGlobalRequestPipes()],
      filters: [config.getGlobalFilters(), config.getGlobalRequestFilters()],
    }[enhancer];
    return global.some((list) => list.length > 0);
  }

  private createHandler(wrapper: InstanceWrapper, method: string): GatewayHandler {
    const metatype = wrapper.metatype as { name: string; prototype: Record<string, unknown> };
    const name = `${metatype.name}.${method}`;
    const callback = metatype.prototype[method] as (...args: unknown[]) => unknown;
    const customParams = Reflect.getMetadata(GATEWAY_PARAMS_METADATA, metatype, method) !== undefined;
    if (!customParams) Reflect.defineMetadata(GATEWAY_PARAMS_METADATA, DEFAULT_PARAMS, metatype, method);
    const uses = (enhancer: Enhancer) => this.usesEnhancer(enhancer, metatype, callback);
    const enhanced = customParams || uses('guards') || uses('interceptors') || uses('pipes');
    const filtered = uses('filters');
    const create = (instance: object, contextId?: ReturnType<typeof ContextIdFactory.create>) =>
      this.contextCreator.create(
        instance as Record<string, (...args: unknown[]) => unknown>,
        callback,
        method,
        GATEWAY_PARAMS_METADATA,
        paramsFactory,
        contextId,
        wrapper.id,
        // Without filters of its own, an error goes straight to the router, which logs it once with the
        // event name and shard id.
        { guards: true, interceptors: true, filters: filtered },
        GATEWAY_CONTEXT_TYPE,
      );

    if (wrapper.isDependencyTreeStatic()) {
      const instance = wrapper.instance as object;
      if (!enhanced && !filtered) {
        // No guard, interceptor, pipe, filter or parameter decorator applies: call the method directly.
        return { name, invoke: (data, context) => callback.call(instance, data, context) };
      }
      const invoke = create(instance);
      return { name, invoke: (data, context) => invoke(data, context) };
    }
    return {
      name,
      invoke: async (data: unknown, context: GatewayEventContext) => {
        const contextId = ContextIdFactory.create();
        this.moduleRef.registerRequestByContextId(context, contextId);
        const instance = await this.moduleRef.resolve(wrapper.token as never, contextId, { strict: false });
        return create(instance as object, contextId)(data, context);
      },
    };
  }
}

/**
 * The provider of a {@link GatewayHandlerExplorer} (Nest's discovery services injected): it registers the handlers of
 * the gateway `name` returns with the router provided as `router`. `name` receives the values of `inject`.
 */
export function gatewayHandlerExplorerProvider<Injected extends unknown[]>(
  provide: InjectionToken,
  router: InjectionToken,
  name: (...injected: Injected) => string,
  inject: InjectionToken[] = [],
): FactoryProvider<GatewayHandlerExplorer> {
  return {
    provide,
    useFactory: (
      discovery: DiscoveryService,
      scanner: MetadataScanner,
      contextCreator: ExternalContextCreator,
      moduleRef: ModuleRef,
      config: ApplicationConfig,
      routerInstance: GatewayEventRouter,
      ...injected: Injected
    ) => new GatewayHandlerExplorer(discovery, scanner, contextCreator, moduleRef, config, routerInstance, name(...injected)),
    inject: [DiscoveryService, MetadataScanner, ExternalContextCreator, ModuleRef, ApplicationConfig, router, ...inject],
  };
}
