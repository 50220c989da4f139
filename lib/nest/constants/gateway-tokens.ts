import type { Abstract, InjectionToken, Type } from '@nestjs/common';
import { GatewayOptionsError } from '../../core/errors/gateway-options.error';

/** Name of the gateway registered without `name`; `@OnEvent` and the inject decorators use it when given none. */
export const DEFAULT_GATEWAY_NAME = 'default';

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The gateway name a `name` option stands for: {@link DEFAULT_GATEWAY_NAME} when left out.
 * @throws {@link GatewayOptionsError} when it is not 1 to 64 letters, digits, `_`, `.` or `-`.
 */
export function resolveGatewayName(name: unknown, option = 'name'): string {
  if (name === undefined) return DEFAULT_GATEWAY_NAME;
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new GatewayOptionsError(option, 'must be 1 to 64 letters, digits, "_", "." or "-"');
  }
  return name;
}

/** A class whose instances a gateway provides (`ShardService`, `ClusterService`, `Cluster`...). */
export type GatewayProviderClass = Type<object> | Abstract<object>;

/**
 * The injection token of one of a gateway's providers. For the default gateway it is `base` itself (the class, or
 * the symbol), so `app.get(ShardService)` keeps working; for a named gateway it is a symbol of its own.
 */
export function getGatewayToken(base: GatewayProviderClass, name?: string): InjectionToken;
export function getGatewayToken(base: symbol, name?: string): symbol;
export function getGatewayToken(base: GatewayProviderClass | symbol, name?: string): InjectionToken {
  const gateway = resolveGatewayName(name);
  if (gateway === DEFAULT_GATEWAY_NAME) return base;
  const label = typeof base === 'symbol' ? base.description : base.name;
  return Symbol.for(`nestjs-discord-gateway:${gateway}:${label}`);
}
