import { describe, it } from 'node:test';
import { expect } from 'expect';
import { StartOrderQueue } from '../../lib/core/cluster/start-order-queue';
import type { IIdentifyQueue } from '../../lib/core/interfaces/identify-queue.interface';

/** An identify queue that grants at once and records the order it was asked in. */
class RecordingQueue implements IIdentifyQueue {
  readonly asked: number[] = [];

  acquire(shardId: number): Promise<void> {
    this.asked.push(shardId);
    return Promise.resolve();
  }
}

void describe('StartOrderQueue', () => {
  void it('passes the first requests on in shard order, however they arrive; later ones go straight through', async () => {
    const queue = new RecordingQueue();
    const order = new StartOrderQueue(queue, [2, 0, 1]);
    const granted: number[] = [];
    const waits = [2, 1, 0].map((id) => order.acquire(id).then(() => granted.push(id)));
    // Shards 2 and 1 asked first: held until shard 0 has asked.
    expect(queue.asked).toEqual([0, 1, 2]);
    await Promise.all(waits);
    expect(granted.sort()).toEqual([0, 1, 2]);
    await order.acquire(1);
    expect(queue.asked).toEqual([0, 1, 2, 1]);
  });

  void it('a shard forgotten before it asked holds no one back; a shard added later takes its place in order', async () => {
    const queue = new RecordingQueue();
    const order = new StartOrderQueue(queue, [0, 1, 3]);
    const three = order.acquire(3);
    order.add(2);
    order.forget(0);
    expect(queue.asked).toEqual([]);
    await order.acquire(1);
    // Shard 3 still waits for the added shard 2.
    expect(queue.asked).toEqual([1]);
    await order.acquire(2);
    await three;
    expect(queue.asked).toEqual([1, 2, 3]);
  });

  void it('a held request whose signal aborts rejects and gives its place up', async () => {
    const queue = new RecordingQueue();
    const order = new StartOrderQueue(queue, [0, 1]);
    const controller = new AbortController();
    const held = order.acquire(1, controller.signal);
    controller.abort();
    await expect(held).rejects.toThrow();
    await order.acquire(0);
    expect(queue.asked).toEqual([0]);
  });
});
