import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { ShardState } from '../../lib/core';
import { eventually } from '../helpers/gateway-test-kit';
import { FAULTY_WORKER, message, startWorkerApp } from '../helpers/worker-app';
import { NestHarness } from '../module/nest-test-kit';

const OP_RESUME = GatewayOpcodes.Resume;

const harness = new NestHarness();

void afterEach(async () => {
  await harness.cleanup();
});

const start = (strategy: Parameters<typeof startWorkerApp>[1] = {}) => startWorkerApp(harness, strategy);

void describe('Supervision of shard worker threads', () => {
  void it('restarts a terminated worker and resumes its shards with no gap and no duplicate', async () => {
    const { gateway, pool, recorder } = await start({ sessionReportIntervalMs: 50 });
    const expected: Record<number, number[]> = { 0: [], 1: [], 2: [] };
    const resumesBefore = gateway.framesOf(OP_RESUME).length;
    const firstWorker = pool.workerOf(0)!;
    for (let i = 0; i < 60; i++) {
      for (const shardId of [0, 1, 2]) expected[shardId].push(gateway.dispatch(shardId, 'MESSAGE_CREATE', message(i)));
      if (i === 25) void firstWorker.terminate();
      // Paced by the other worker (shard 2): the stream goes on while the first worker is gone and restarts.
      await eventually(() => recorder.of(2).length === expected[2].length, 15_000, 'shard 2 handling the stream');
    }
    await eventually(() => [0, 1, 2].every((id) => recorder.of(id).length >= expected[id].length), 15_000, 'every event handled');
    // One more event per shard, handled last: a duplicate of an earlier one would have come before it.
    for (const shardId of [0, 1, 2]) expected[shardId].push(gateway.dispatch(shardId, 'MESSAGE_CREATE', message(99)));
    await eventually(() => [0, 1, 2].every((id) => recorder.of(id).at(-1) === expected[id].at(-1)), 15_000, 'the last events');

    expect(pool.workerOf(0)).not.toBe(firstWorker);
    expect(pool.workerOf(0)).toBe(pool.workerOf(1));
    const resumed = gateway.framesOf(OP_RESUME).slice(resumesBefore).map((f) => f.shardId).sort();
    expect(resumed).toEqual([0, 1]);
    for (const shardId of [0, 1, 2]) expect(recorder.of(shardId)).toEqual(expected[shardId]);
  });

  void it('replaces a worker that stops answering pings', async () => {
    const { gateway, pool, cluster, recorder } = await start({ pingIntervalMs: 100, pingTimeoutMs: 300, workerEntry: FAULTY_WORKER });
    const hung = pool.workerOf(2)!;
    const errors: string[] = [];
    cluster.error$.subscribe((error) => errors.push(error.message));
    const before = gateway.dispatch(2, 'MESSAGE_CREATE', message(1));
    await eventually(() => recorder.of(2).includes(before));
    hung.postMessage({ fault: 'hang' });
    await eventually(() => pool.workerOf(2) !== null && pool.workerOf(2) !== hung, 10_000, 'a new worker');
    expect(errors.some((m) => m.includes('did not answer a ping'))).toBe(true);
    await eventually(() => cluster.shards.get(2)!.state === ShardState.Ready && cluster.shards.get(3)!.state === ShardState.Ready, 10_000, 'shards ready');
    const after = gateway.dispatch(2, 'MESSAGE_CREATE', message(2));
    await eventually(() => recorder.of(2).includes(after));
    expect(recorder.of(2)).toEqual([before, after]);
    expect(gateway.framesOf(OP_RESUME, 2).length).toBeGreaterThanOrEqual(1);
  });

  void it('keeps the token out of the errors of a crashed worker, and restarts it', async () => {
    const { gateway, pool, cluster, logger } = await start({ workerEntry: FAULTY_WORKER });
    const errors: Error[] = [];
    cluster.error$.subscribe((error) => errors.push(error));
    const crashed = pool.workerOf(1)!;
    crashed.postMessage({ fault: 'crash', text: `boom with ${gateway.token} inside` });
    await eventually(() => errors.some((e) => e.message.includes('boom')), 5_000, 'the crash reported');
    await eventually(() => pool.workerOf(1) !== null && pool.workerOf(1) !== crashed, 10_000, 'a new worker');
    await eventually(() => cluster.shards.get(1)!.state === ShardState.Ready, 10_000, 'shard 1 ready');
    const texts = [...errors.map((e) => `${e.name} ${e.message} ${e.stack ?? ''}`), ...logger.lines.map((l) => l.message)];
    expect(texts.some((t) => t.includes('boom'))).toBe(true);
    for (const text of texts) expect(text).not.toContain(gateway.token);
  });
});
