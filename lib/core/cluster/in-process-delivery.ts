import type { IDispatchDelivery } from '../interfaces/dispatch-delivery.interface';
import type { IHandlingTracker } from '../interfaces/handling-tracker.interface';
import type { Cluster } from './cluster';

/**
 * The default {@link IDispatchDelivery}: dispatches reach this process's handlers only (the event router), and
 * nothing else holds them. Handling is tracked by the router alone.
 */
export class InProcessDelivery implements IDispatchDelivery {
  private handling: IHandlingTracker | null = null;

  attach(cluster: Cluster, handling: IHandlingTracker | null): void {
    this.handling = handling;
    cluster.trackHandling(handling);
  }

  detach(): Promise<void> {
    this.handling = null;
    return Promise.resolve();
  }

  oldestUnsettled(shardId: number): number | null {
    return this.handling?.oldestUnsettled(shardId) ?? null;
  }
}
