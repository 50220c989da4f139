import type { PipeTransform, Type } from '@nestjs/common';
import { GATEWAY_PARAMS_METADATA, GatewayParamtype } from '../constants/gateway-module.constants';

function createParamDecorator(paramtype: GatewayParamtype) {
  return (property?: string, ...pipes: (Type<PipeTransform> | PipeTransform)[]): ParameterDecorator =>
    (target, key, index) => {
      if (key === undefined) return;
      const args = Reflect.getMetadata(GATEWAY_PARAMS_METADATA, target.constructor, key) ?? {};
      const entry = { index, data: property, pipes };
      Reflect.defineMetadata(GATEWAY_PARAMS_METADATA, { ...args, [`${paramtype}:${index}`]: entry }, target.constructor, key);
    };
}

/**
 * Injects the event's data (or one property of it) into a handler parameter; pipes given here, or with
 * `@UsePipes`, transform it. Without parameter decorators a handler receives `(data, context)`.
 */
export const EventData = createParamDecorator(GatewayParamtype.DATA);

/** Injects the {@link GatewayEventContext} (or one property of it) into a handler parameter. */
export const EventContext = createParamDecorator(GatewayParamtype.CONTEXT);
