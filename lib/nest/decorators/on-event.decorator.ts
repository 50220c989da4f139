import { ON_EVENT_METADATA } from '../constants/gateway-module.constants';
import { resolveGatewayName } from '../constants/gateway-tokens';
import type { GatewayEventName } from '../../core/interfaces/gateway-events.interface';

/** A known event name (offered by editors), `'*'` for every dispatch, or any other string. */
export type OnEventName = GatewayEventName | '*' | (string & Record<never, never>);

/** Options of {@link OnEvent}, given after the event names. */
export interface OnEventOptions {
  /** The gateway (the `name` given to `GatewayModule.forRoot`) whose events the method receives. @defaultValue `'default'` */
  gateway?: string;
}

/** One event name a method handles, on one gateway: what `@OnEvent` stores under {@link ON_EVENT_METADATA}. */
export interface OnEventBinding {
  event: string;
  gateway: string;
}

/** Event name of {@link OnEvent} that receives every dispatch. */
export const ANY_GATEWAY_EVENT = '*';

/**
 * Routes gateway dispatch events to the decorated method of any provider or controller. Accepts one or more
 * event names, optionally followed by {@link OnEventOptions}; stackable. Any string is accepted, so events Discord
 * adds later work at once. Type the data parameter with `GatewayEventData<'NAME'>`, which gives
 * `discord-api-types`' type for known names.
 *
 * `'*'` receives every dispatch (read the name from the context's `event`). It makes the shards decode every
 * event, including the ones no other handler wants, so it costs a JSON parse per event and a call per event.
 *
 * Named like `@nestjs/event-emitter`'s `OnEvent`: import it from `nestjs-discord-gateway` (or alias it) when
 * both are used in one file.
 *
 * ```ts
 * @OnEvent('MESSAGE_CREATE')
 * onMessage(message: GatewayEventData<'MESSAGE_CREATE'>, context: GatewayEventContext) {}
 *
 * @OnEvent('MESSAGE_CREATE', { gateway: 'support' })
 * onSupportMessage(message: GatewayEventData<'MESSAGE_CREATE'>) {}
 * ```
 */
export function OnEvent(...events: [OnEventName, ...OnEventName[]]): MethodDecorator;
export function OnEvent(...args: [OnEventName, ...OnEventName[], OnEventOptions]): MethodDecorator;
export function OnEvent(...args: (OnEventName | OnEventOptions)[]): MethodDecorator {
  const last = args[args.length - 1];
  const options = typeof last === 'object' && last !== null ? (last as OnEventOptions) : undefined;
  const events = options ? args.slice(0, -1) : args;
  if (events.length === 0) throw new TypeError('@OnEvent() takes one or more non-empty event names');
  for (const event of events) {
    if (typeof event !== 'string' || event.length === 0) {
      throw new TypeError('@OnEvent() takes one or more non-empty event names');
    }
  }
  const gateway = resolveGatewayName(options?.gateway, '@OnEvent() option gateway');
  return (_target, _key, descriptor) => {
    const method = descriptor.value as unknown as object;
    const existing: OnEventBinding[] = Reflect.getMetadata(ON_EVENT_METADATA, method) ?? [];
    const merged = [...existing];
    for (const event of events as string[]) {
      if (!merged.some((b) => b.event === event && b.gateway === gateway)) merged.push({ event, gateway });
    }
    Reflect.defineMetadata(ON_EVENT_METADATA, merged, method);
    return descriptor;
  };
}
