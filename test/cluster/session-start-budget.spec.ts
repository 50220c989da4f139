import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { InMemoryIdentifyQueue } from '../../lib/core/queue/in-memory-identify-queue';
import { ClusterHarness } from '../helpers/cluster-test-kit';

const harness = new ClusterHarness();

void afterEach(async () => {
  await harness.closeAll();
});

void describe('session-start budget', () => {
  for (const workers of [false, true]) {
    void it(`is not spent by a gateway that drops every connection right after HELLO${workers ? ' (shards in a worker thread)' : ''}`, { timeout: 90_000 }, async () => {
      // One session start left, and connections that end before an IDENTIFY can be written: one wasted grant would
      // use the budget up for the day.
      const gateway = await harness.gatewayWith({ sessionStartLimit: { remaining: 1, total: 1000 } });
      gateway.behaviour.dropAfterHello = true;
      const cluster = harness.clusterOn(gateway, { compression: false, ...(workers ? { strategy: { type: 'workers', shardsPerWorker: 1 } } : {}) });
      const debug: string[] = [];
      cluster.debug$.subscribe((entry) => debug.push(entry.message));
      const notWritten = () => debug.filter((line) => line.includes('IDENTIFY was not sent')).length;

      const fifth = gateway.waitForConnection((c) => c.id === 5, 30_000);
      cluster.up().catch(() => undefined);
      await fifth;
      gateway.behaviour.dropAfterHello = false;
      await gateway.waitForReady(0, 30_000);

      expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);
      // Grants went to connections that were gone before the IDENTIFY could be written (others were still waiting
      // in the queue's window when theirs closed, and gave their place up).
      expect(notWritten()).toBeGreaterThanOrEqual(1);
      expect(debug.some((line) => line.includes('Session start limit reached'))).toBe(false);
      expect(gateway.sessionStartLimit.remaining).toBe(0);
    });
  }

  void it('InMemoryIdentifyQueue.refund gives a session start back, never beyond the total', async () => {
    const queue = new InMemoryIdentifyQueue({ windowMs: 0, sessionStartLimit: { remaining: 1, total: 2, resetAfter: 86_400_000 } });
    await queue.acquire(0);
    expect(queue.remaining).toBe(0);
    queue.refund(0);
    expect(queue.remaining).toBe(1);
    queue.refund(0);
    expect(queue.remaining).toBe(2);
    queue.refund(0);
    expect(queue.remaining).toBe(2);
  });
});
