import { ON_EVENT_METADATA } from '../constants/gateway-module.constants';
import type { GatewayEventName } from '../interfaces/gateway-events.interface';

/** A known event name (offered by editors) or any other string. */
export type OnEventName = GatewayEventName | (string & Record<never, never>);

/**
 * Routes gateway dispatch events to the decorated method of any provider or controller. Accepts one or more
 * event names; stackable. Any string is accepted, so events Discord adds later work at once. Type the data
 * parameter with `GatewayEventData<'NAME'>`, which gives `discord-api-types`' type for known names.
 *
 * Named like `@nestjs/event-emitter`'s `OnEvent`: import it from `nestjs-discord-gateway` (or alias it) when
 * both are used in one file.
 *
 * ```ts
 * @OnEvent('MESSAGE_CREATE')
 * onMessage(message: GatewayEventData<'MESSAGE_CREATE'>, context: GatewayEventContext) {}
 * ```
 */
export function OnEvent(...events: [OnEventName, ...OnEventName[]]): MethodDecorator {
  for (const event of events) {
    if (typeof event !== 'string' || event.length === 0) {
      throw new TypeError('@OnEvent() takes one or more non-empty event names');
    }
  }
  return (_target, _key, descriptor) => {
    const method = descriptor.value as unknown as object;
    const existing: string[] = Reflect.getMetadata(ON_EVENT_METADATA, method) ?? [];
    const merged = [...new Set([...existing, ...events])];
    Reflect.defineMetadata(ON_EVENT_METADATA, merged, method);
    return descriptor;
  };
}
