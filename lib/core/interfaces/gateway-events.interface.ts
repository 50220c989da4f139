import type { GatewayDispatchPayload } from 'discord-api-types/v10';

/** Every dispatch event name `discord-api-types` knows, mapped to the type of its data. */
export type GatewayEventMap = {
  [P in GatewayDispatchPayload as `${P['t']}`]: P['d'];
};

/** A known event name, e.g. `'MESSAGE_CREATE'`. */
export type GatewayEventName = keyof GatewayEventMap;

/** Data type of event `K`: typed for known names, `unknown` for names Discord added after this release. */
export type GatewayEventData<K extends string> = K extends GatewayEventName ? GatewayEventMap[K] : unknown;
