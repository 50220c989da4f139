import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';

/** Injection token of the options given to `GatewayModule.forRoot` / `forRootAsync`. */
export const GATEWAY_MODULE_OPTIONS = Symbol('GATEWAY_MODULE_OPTIONS');

/** Metadata key under which `@OnEvent` stores its bindings (`{ event, gateway }[]`) on a method. */
export const ON_EVENT_METADATA = 'nestjs-discord-gateway:on-event';

/**
 * Metadata key of `@EventData()` / `@EventContext()` parameters. It is Nest's `ROUTE_ARGS_METADATA` (as for
 * microservice and WebSocket handlers), so that Nest's scanner registers pipe classes given to the decorators.
 */
export const GATEWAY_PARAMS_METADATA: typeof ROUTE_ARGS_METADATA = ROUTE_ARGS_METADATA;

/**
 * `ExecutionContext.getType()` of a gateway event, so that guards, interceptors and filters written for HTTP
 * can tell gateway events apart: `if (context.getType<GatewayContextType>() === 'discord-gateway')`.
 */
export const GATEWAY_CONTEXT_TYPE = 'discord-gateway';

/** The context type string of gateway events. */
export type GatewayContextType = typeof GATEWAY_CONTEXT_TYPE;

/** Kinds of handler parameters. */
export enum GatewayParamtype {
  /**
   * The event's data (`d`). Same value as Nest's `RouteParamtypes.BODY`, so pipes see `metadata.type === 'body'`
   * (as for microservice and WebSocket payloads) and `ValidationPipe` validates it.
   */
  DATA = 3,
  /** The {@link GatewayEventContext}. */
  CONTEXT = 1,
}
