import { Inject } from '@nestjs/common';
import { getGatewayToken } from '../constants/gateway-tokens';
import { ClusterService } from '../services/cluster.service';
import { ShardService } from '../services/shard.service';

/** Injects the {@link ShardService} of a gateway: `@InjectShardService('support')`; the default one without a name. */
export function InjectShardService(gateway?: string): PropertyDecorator & ParameterDecorator {
  return Inject(getGatewayToken(ShardService, gateway));
}

/** Injects the {@link ClusterService} of a gateway: `@InjectClusterService('support')`; the default one without a name. */
export function InjectClusterService(gateway?: string): PropertyDecorator & ParameterDecorator {
  return Inject(getGatewayToken(ClusterService, gateway));
}
