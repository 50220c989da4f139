import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { Injectable } from '@nestjs/common';
import { GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import { Cluster, GatewayModule, OnEvent, ShardService, type GatewayEventContext, type GatewayModuleOptions } from '../../lib';
import { GatewayOptionsError, ShardCommandError, ShardState, type IIdentifyQueue } from '../../lib/core';
import { createMessage, type LocalGateway } from '../../lib/testing';
import type { WorkerPool } from '../../lib/workers/worker-pool';
import { eventually, eventuallyAsync } from '../helpers/gateway-test-kit';
import { CapturingLogger, NestHarness, moduleOptions, rejectionOf } from '../module/nest-test-kit';

const OP_RESUME = GatewayOpcodes.Resume;
const OP_PRESENCE = GatewayOpcodes.PresenceUpdate;

interface Handled {
  shardId: number;
  sequence: number;
  content: string;
  sessionId: string | null;
}

/** Records every MESSAGE_CREATE its @OnEvent handler receives. */
@Injectable()
class MessageRecorder {
  readonly handled: Handled[] = [];

  @OnEvent('MESSAGE_CREATE')
  onMessage(data: { content: string }, context: GatewayEventContext): void {
    this.handled.push({ shardId: context.shardId, sequence: context.sequence, content: data.content, sessionId: context.sessionId });
  }

  of(shardId: number): number[] {
    return this.handled.filter((h) => h.shardId === shardId).map((h) => h.sequence);
  }
}

const harness = new NestHarness();

void afterEach(async () => {
  await harness.cleanup();
});

interface Running {
  gateway: LocalGateway;
  cluster: Cluster;
  pool: WorkerPool;
  recorder: MessageRecorder;
  logger: CapturingLogger;
}

/** A 4-shard gateway and a ready app running its shards 2 per worker thread. */
async function start(strategy: Partial<Extract<GatewayModuleOptions['strategy'], { type: 'workers' }>> = {}): Promise<Running> {
  const gateway = await harness.gateway({ shards: 4 });
  const logger = new CapturingLogger();
  const options = moduleOptions(gateway, { strategy: { type: 'workers', shardsPerWorker: 2, ...strategy } });
  const app = await harness.app({ imports: [GatewayModule.forRoot(options)], providers: [MessageRecorder] }, logger);
  const cluster = app.get(Cluster);
  return { gateway, cluster, pool: cluster.workerPool!, recorder: app.get(MessageRecorder), logger };
}

function message(seed: number): unknown {
  return createMessage(seed);
}

void describe('Shards in worker threads', () => {
  void it('delivers events from shards of two workers to @OnEvent handlers', async () => {
    const { gateway, pool, recorder } = await start();
    expect(pool.workers).toHaveLength(2);
    expect(pool.workerOf(0)).toBe(pool.workerOf(1));
    expect(pool.workerOf(2)).toBe(pool.workerOf(3));
    expect(pool.workerOf(0)!.threadId).not.toBe(pool.workerOf(2)!.threadId);

    const sent = [0, 1, 2, 3].map((shardId) => ({ shardId, sequence: gateway.dispatch(shardId, 'MESSAGE_CREATE', message(shardId + 1)) }));
    await eventually(() => recorder.handled.length === 4, 5_000, 'four handled events');
    for (const { shardId, sequence } of sent) {
      const handled = recorder.handled.find((h) => h.shardId === shardId)!;
      expect(handled.sequence).toBe(sequence);
      expect(handled.content).toBe((createMessage(shardId + 1) as { content: string }).content);
      expect(handled.sessionId).toBe(gateway.sessionOf(shardId));
    }
  });

  void it('does not send events no handler wants across threads, and starts sending them once one is wanted', async () => {
    const { gateway, cluster } = await start();
    const seen: string[] = [];
    cluster.dispatch$.subscribe((event) => seen.push(event.t));
    gateway.dispatch(0, 'TYPING_START', { channel_id: '1', user_id: '2', timestamp: 1 });
    gateway.dispatch(0, 'MESSAGE_CREATE', message(1));
    await eventually(() => seen.includes('MESSAGE_CREATE'));
    expect(seen).not.toContain('TYPING_START');

    cluster.dispatchFilter!.add('TYPING_START');
    // A round trip to every worker, on the port that carried the filter change: each has applied it.
    await cluster.collectInfo(15_000);
    gateway.dispatch(2, 'TYPING_START', { channel_id: '1', user_id: '2', timestamp: 1 });
    await eventually(() => seen.includes('TYPING_START'));
  });

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
    const { gateway, pool, cluster, recorder } = await start({ pingIntervalMs: 100, pingTimeoutMs: 300 });
    const hung = pool.workerOf(2)!;
    const errors: string[] = [];
    cluster.error$.subscribe((error) => errors.push(error.message));
    const before = gateway.dispatch(2, 'MESSAGE_CREATE', message(1));
    await eventually(() => recorder.of(2).includes(before));
    pool.hangForTest(2);
    await eventually(() => pool.workerOf(2) !== null && pool.workerOf(2) !== hung, 10_000, 'a new worker');
    expect(errors.some((m) => m.includes('did not answer a ping'))).toBe(true);
    await eventually(() => cluster.shards.get(2)!.state === ShardState.Ready && cluster.shards.get(3)!.state === ShardState.Ready, 10_000, 'shards ready');
    const after = gateway.dispatch(2, 'MESSAGE_CREATE', message(2));
    await eventually(() => recorder.of(2).includes(after));
    expect(recorder.of(2)).toEqual([before, after]);
    expect(gateway.framesOf(OP_RESUME, 2).length).toBeGreaterThanOrEqual(1);
  });

  void it('routes commands to the worker of their shard and returns its answer', async () => {
    const { gateway, cluster } = await start();
    await cluster.send(3, { op: OP_PRESENCE, d: { since: null, activities: [], status: PresenceUpdateStatus.Idle, afk: false } });
    const frame = await gateway.waitForFrame((f) => f.op === OP_PRESENCE, 5_000, 0);
    expect(frame.shardId).toBe(3);
    expect(gateway.framesOf(OP_PRESENCE)).toHaveLength(1);

    const tooBig = { op: OP_PRESENCE, d: { since: null, activities: [{ name: 'x'.repeat(5_000), type: 0 }], status: PresenceUpdateStatus.Online, afk: false } };
    const error = await rejectionOf(cluster.send(1, tooBig as never));
    expect(error).toBeInstanceOf(ShardCommandError);
    expect((error as ShardCommandError).shardId).toBe(1);
  });

  void it('tells the identify queue on the main thread when a worker has written each IDENTIFY', async () => {
    const gateway = await harness.gateway({ shards: 4 });
    const identified: number[] = [];
    const identifyQueue: IIdentifyQueue = { acquire: async () => undefined, identified: (shardId) => identified.push(shardId) };
    const options = moduleOptions(gateway, { strategy: { type: 'workers', shardsPerWorker: 2 }, identifyQueue });
    await harness.app({ imports: [GatewayModule.forRoot(options)] }, new CapturingLogger());
    await eventually(() => identified.length === 4, 5_000, 'a report per shard');
    expect(identified.sort()).toEqual([0, 1, 2, 3]);
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(4);
  });

  void it('routes ShardService commands to the right worker', async () => {
    const gateway = await harness.gateway({ shards: 4 });
    const options = moduleOptions(gateway, { strategy: { type: 'workers', shardsPerWorker: 2 } });
    const app = await harness.app({ imports: [GatewayModule.forRoot(options)] });
    await app.get(ShardService).setPresence({ since: null, activities: [], status: PresenceUpdateStatus.DoNotDisturb, afk: false }, 2);
    const frame = await gateway.waitForFrame((f) => f.op === OP_PRESENCE, 5_000, 0);
    expect(frame.shardId).toBe(2);
    expect(frame.d.status).toBe('dnd');
  });

  void it('gathers info from every worker', async () => {
    const { gateway, cluster } = await start();
    // A worker's first heartbeat comes at a random point of the interval: wait for one ACK per shard.
    let info = await cluster.collectInfo(2_000);
    await eventuallyAsync(async () => (info = await cluster.collectInfo(2_000)).every((i) => i.latency.last !== null), 15_000, 'a latency per shard');
    expect(info.map((i) => i.id)).toEqual([0, 1, 2, 3]);
    for (const shard of info) {
      expect(shard.state).toBe(ShardState.Ready);
      expect(shard.sessionId).toBe(gateway.sessionOf(shard.id));
      expect(shard.latency.last).not.toBeNull();
    }
  });

  void it('refuses invalid worker strategies and options workers cannot carry', () => {
    const base = { token: 'token-that-must-not-leak', intents: 1, shards: { total: 1, ids: [0] }, gatewayUrl: 'ws://127.0.0.1:1' };
    for (const strategy of [{ type: 'threads' }, { type: 'workers', shardsPerWorker: 0 }, { type: 'workers', pingTimeoutMs: 1.5 }]) {
      expect(() => new Cluster({ ...base, strategy: strategy as never })).toThrow(GatewayOptionsError);
    }
    expect(() => new Cluster({ ...base, strategy: { type: 'workers' }, handshakeGuard: () => Promise.resolve(true) })).toThrow(GatewayOptionsError);
    expect(() => new Cluster({ ...base, strategy: { type: 'workers', shardsPerWorker: 3 } })).not.toThrow();
  });

  void it('keeps the token out of the errors of a crashed worker, and restarts it', async () => {
    const { gateway, pool, cluster, logger } = await start();
    const errors: Error[] = [];
    cluster.error$.subscribe((error) => errors.push(error));
    const crashed = pool.workerOf(1)!;
    pool.crashForTest(1, `boom with ${gateway.token} inside`);
    await eventually(() => errors.some((e) => e.message.includes('boom')), 5_000, 'the crash reported');
    await eventually(() => pool.workerOf(1) !== null && pool.workerOf(1) !== crashed, 10_000, 'a new worker');
    await eventually(() => cluster.shards.get(1)!.state === ShardState.Ready, 10_000, 'shard 1 ready');
    const texts = [...errors.map((e) => `${e.name} ${e.message} ${e.stack ?? ''}`), ...logger.lines.map((l) => l.message)];
    expect(texts.some((t) => t.includes('boom'))).toBe(true);
    for (const text of texts) expect(text).not.toContain(gateway.token);
  });
});
