import type { ModuleRef } from '@nestjs/core';
import { Cluster } from '../core/cluster/cluster';
import { DEFAULT_GATEWAY_NAME, getGatewayToken, resolveGatewayName } from './constants/gateway-tokens';
import { GatewayEventRouter } from './gateway-event-router';

/** What a gateway's add-ons (health, metrics, the testing kit) read of it. */
export interface GatewayParts {
  cluster: Cluster;
  router: GatewayEventRouter;
}

/** Anything that resolves providers anywhere in an app (`ModuleRef`, `INestApplicationContext`...). */
export type GatewayPartsResolver = Pick<ModuleRef, 'get'>;

/**
 * The `Cluster` and event router of the gateway named `name`, wherever it is registered in the app.
 * @throws Error naming `who` and the gateway when no `GatewayModule` of that name is registered.
 */
export function findGateway(resolver: GatewayPartsResolver, name: string | undefined, who: string): GatewayParts {
  try {
    return {
      cluster: resolver.get<Cluster>(getGatewayToken(Cluster, name), { strict: false }),
      router: resolver.get<GatewayEventRouter>(getGatewayToken(GatewayEventRouter, name), { strict: false }),
    };
  } catch {
    const gateway = resolveGatewayName(name);
    const forRoot = gateway === DEFAULT_GATEWAY_NAME ? 'GatewayModule.forRoot(...)' : `GatewayModule.forRoot({ name: '${gateway}', ... })`;
    throw new Error(`${who}: the app has no gateway named "${gateway}"; import ${forRoot}`);
  }
}
