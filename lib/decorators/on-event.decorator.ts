import { ON_EVENT_METADATA } from '../constants/gateway-module.constants';
import type { GatewayEventContext } from '../interfaces/gateway-event-context.interface';
import type { GatewayEventData } from '../interfaces/gateway-events.interface';

/**
 * Routes gateway dispatch events to the decorated method of any provider or controller. Accepts one or more
 * event names; stackable. Any string is accepted, so events Discord adds later work at once; known names
 * type the handler's first parameter.
 *
 * Named like `@nestjs/event-emitter`'s `OnEvent`: import it from `nestjs-discord-gateway` (or alias it) when
 * both are used in one file.
 *
 * ```ts
 * @OnEvent('MESSAGE_CREATE')
 * onMessage(message: GatewayEventData<'MESSAGE_CREATE'>, context: GatewayEventContext) {}
 * ```
 */
export function OnEvent<K extends string>(
  ...events: [K, ...K[]]
): <M extends (data: GatewayEventData<K>, context: GatewayEventContext, ...rest: any[]) => unknown>(
  target: object,
  key: string | symbol,
  descriptor: TypedPropertyDescriptor<M>,
) => TypedPropertyDescriptor<M> {
  for (const event of events) {
    if (typeof event !== 'string' || event.length === 0) {
      throw new TypeError('@OnEvent() takes one or more non-empty event names');
    }
  }
  return (_target, _key, descriptor) => {
    const method = descriptor.value as object;
    const existing: string[] = Reflect.getMetadata(ON_EVENT_METADATA, method) ?? [];
    const merged = [...new Set([...existing, ...events])];
    Reflect.defineMetadata(ON_EVENT_METADATA, merged, method);
    return descriptor;
  };
}
