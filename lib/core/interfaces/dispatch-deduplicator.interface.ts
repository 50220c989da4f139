import type { GatewayDispatch } from './gateway-dispatch.interface';

/**
 * Decides, across processes, which dispatches are handled: each event is claimed once, and an event some process
 * already claimed (before a crash, say) is not handled again. Used by the exactly-once mode (`exactlyOnce` of
 * `GatewayModule`; `RedisDispatchDeduplicator` in `nestjs-discord-gateway/redis`).
 */
export interface IDispatchDeduplicator {
  /**
   * Claims a batch of events (in arrival order) in one call; resolves with one entry per event: true to handle
   * it, false when it was claimed before. A rejection means "unknown": the caller handles the batch (at least once).
   */
  claim(events: readonly GatewayDispatch[]): Promise<boolean[]>;
}
