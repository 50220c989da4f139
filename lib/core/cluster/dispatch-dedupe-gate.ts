import type { IDispatchDeduplicator } from '../interfaces/dispatch-deduplicator.interface';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';

/**
 * Holds dispatches until an {@link IDispatchDeduplicator} has claimed them, then delivers them in arrival order.
 * The events of one event-loop turn are claimed in one call, with one call in flight at a time (what arrives
 * meanwhile goes into the next one). When a claim fails, the batch is delivered as claimed (at least once) and the
 * failure is reported once until a claim succeeds again.
 */
export class DispatchDedupeGate {
  private queue: GatewayDispatch[] = [];
  private armed = false;
  private claiming = false;
  private failing = false;

  /**
   * @param deduplicator - claims the batches
   * @param deliver - receives every event, in order, with whether it was claimed here (false: handled before)
   * @param report - receives a claim failure
   */
  constructor(
    private readonly deduplicator: IDispatchDeduplicator,
    private readonly deliver: (event: GatewayDispatch, claimed: boolean) => void,
    private readonly report: (error: Error) => void,
  ) {}

  /** Events waiting for their claim. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Queues an event for the next claim. */
  push(event: GatewayDispatch): void {
    this.queue.push(event);
    if (!this.armed && !this.claiming) this.arm();
  }

  private arm(): void {
    this.armed = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    this.armed = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.claiming = true;
    let claims: boolean[] | null = null;
    try {
      claims = await this.deduplicator.claim(batch);
      this.failing = false;
    } catch (error) {
      if (!this.failing) this.report(error instanceof Error ? error : new Error(String(error)));
      this.failing = true;
    }
    this.claiming = false;
    for (let i = 0; i < batch.length; i++) {
      try {
        this.deliver(batch[i], claims?.[i] !== false);
      } catch (error) {
        this.report(error instanceof Error ? error : new Error(String(error)));
      }
    }
    if (this.queue.length > 0) this.arm();
  }
}
