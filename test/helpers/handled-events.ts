import { Injectable } from '@nestjs/common';
import { OnEvent, type GatewayEventContext } from '../../lib/nest';

/** A provider that records every MESSAGE_CREATE its app handles, as `<shard id>#<sequence>`. */
@Injectable()
export class HandledEvents {
  readonly handled: string[] = [];

  @OnEvent('MESSAGE_CREATE')
  onMessage(_data: unknown, context: GatewayEventContext): void {
    this.handled.push(`${context.shardId}#${context.sequence}`);
  }
}
