import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import { Cluster, GatewayModule, ShardService } from '../../lib/nest';
import { GatewayOptionsError, ShardCommandError, ShardState, type IIdentifyQueue } from '../../lib/core';
import { createMessage } from '../../lib/nest/testing';
import { eventually, eventuallyAsync } from '../helpers/gateway-test-kit';
import { message, startWorkerApp } from '../helpers/worker-app';
import { CapturingLogger, NestHarness, moduleOptions, rejectionOf } from '../module/nest-test-kit';

const OP_PRESENCE = GatewayOpcodes.PresenceUpdate;

const harness = new NestHarness();

void afterEach(async () => {
  await harness.cleanup();
});

const start = (strategy: Parameters<typeof startWorkerApp>[1] = {}) => startWorkerApp(harness, strategy);

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

  void it('forwards the events the filter forwards across threads as the payload text the worker received, undecoded', async () => {
    const { gateway, cluster } = await start();
    const decoded: string[] = [];
    const forwarded: { shardId: number; t: string; s: number; sessionId?: string; frame: string }[] = [];
    cluster.dispatch$.subscribe((event) => decoded.push(event.t));
    cluster.forwarded$.subscribe((event) => forwarded.push({ ...event, frame: event.frame.toString() }));
    cluster.dispatchFilter!.forward('TYPING_START');
    // A round trip to every worker, on the port that carried the filter change: each has applied it.
    await cluster.collectInfo(15_000);
    const typing = { channel_id: '1', user_id: '2', timestamp: 1 };
    const sent = [0, 3].map((shardId) => ({ shardId, s: gateway.dispatch(shardId, 'TYPING_START', typing) }));
    gateway.dispatch(1, 'MESSAGE_CREATE', message(1));
    await eventually(() => forwarded.length === 2 && decoded.includes('MESSAGE_CREATE'), 5_000, 'two forwarded events and a decoded one');
    expect(forwarded.sort((a, b) => a.shardId - b.shardId)).toEqual(
      sent.map(({ shardId, s }) => ({ shardId, t: 'TYPING_START', s, sessionId: gateway.sessionOf(shardId), frame: JSON.stringify({ op: 0, t: 'TYPING_START', s, d: typing }) })),
    );
    expect(decoded).not.toContain('TYPING_START');
    expect(cluster.shards.get(3)?.session?.sequence).toBe(sent[1].s);
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
    expect(() => new Cluster({ ...base, strategy: { type: 'workers', workerEntry: 'relative/entry.js' } })).toThrow(GatewayOptionsError);
    expect(() => new Cluster({ ...base, strategy: { type: 'workers' }, handshakeGuard: () => Promise.resolve(true) })).not.toThrow();
    expect(() => new Cluster({ ...base, strategy: { type: 'workers', shardsPerWorker: 3 } })).not.toThrow();
  });
});
