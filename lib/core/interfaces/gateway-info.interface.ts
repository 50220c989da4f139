import type { RESTGetAPIGatewayBotResult } from 'discord-api-types/v10';

/**
 * Where a cluster learns the gateway URL, the recommended shard count and the session-start limits.
 */
export interface IGatewayInfoSource {
  /** Current answer of `GET /gateway/bot`. */
  fetch(): Promise<RESTGetAPIGatewayBotResult>;
}
