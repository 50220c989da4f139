import type { GatewaySendPayload } from 'discord-api-types/v10';
import type { Observable } from 'rxjs';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';
import type { DispatchFilter } from '../shard/dispatch-filter';

/**
 * What a request that waits for its reply among the dispatches needs of a cluster: its dispatches, its filter (the
 * reply's event is added to it), a way to send and a way to report a malformed reply. `Cluster` is one.
 */
export interface RequestTransport {
  /** Every dispatch of every shard, where the reply is looked for. */
  readonly dispatch$: Observable<GatewayDispatch>;
  /** The filter the shards decode by, if any: the reply's event is added to it. */
  readonly dispatchFilter?: DispatchFilter;
  /** Sends a command through one shard. */
  send(shardId: number, command: GatewaySendPayload): Promise<void>;
  /** Reports a reply of the wrong shape once; returns the error the waiting request rejects with. */
  reportMalformed(event: GatewayDispatch, problem: string, request: string): Error;
}
