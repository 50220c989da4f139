import { getGatewayToken } from './constants/gateway-tokens';
import type { GatewayPartsResolver } from './gateway-lookup';
import { GATEWAY_SCALE_OUT, type IGatewayScaleOut } from './interfaces/gateway-scale-out.interface';
import { STREAM_DELIVERY_STATS, type IStreamDeliveryStats } from '../core/interfaces/stream-delivery-stats.interface';

/**
 * The Redis Streams delivery of an app: a worker app's `GatewayWorker`, or the stream publisher of the gateway named
 * `gateway` (`delivery: 'redis-streams'`).
 * @throws Error naming `who` when the app has neither.
 */
export function findStreamDelivery(resolver: GatewayPartsResolver, gateway: string | undefined, who: string): IStreamDeliveryStats {
  try {
    return resolver.get<IStreamDeliveryStats>(STREAM_DELIVERY_STATS, { strict: false });
  } catch {
    // Not a worker app: the gateway's publisher, below.
  }
  let scaleOut: IGatewayScaleOut | null = null;
  try {
    scaleOut = resolver.get<IGatewayScaleOut | null>(getGatewayToken(GATEWAY_SCALE_OUT, gateway), { strict: false });
  } catch {
    // No GatewayModule of that name.
  }
  const delivery = scaleOut?.delivery as Partial<IStreamDeliveryStats> | null | undefined;
  if (delivery && typeof delivery.deliveryReport === 'function') return delivery as IStreamDeliveryStats;
  throw new Error(`${who}: the app has neither GatewayWorkerModule nor a GatewayModule with delivery: 'redis-streams'`);
}
