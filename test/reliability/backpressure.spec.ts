import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Inject, Injectable } from '@nestjs/common';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { GatewayEventRouter, GatewayModule, OnEvent, ShardService, type GatewayEventContext } from '../../lib/nest';
import { Cluster } from '../../lib/core';
import { createMessage, type LocalGateway } from '../../lib/nest/testing';
import { TEST_HEARTBEAT_MS, eventually } from '../helpers/gateway-test-kit';
import { NestHarness, moduleOptions } from '../module/nest-test-kit';

const LIMIT = 50;

/**
 * Shared state of the held handler (a provider value, so each app gets its own). Handlers wait until
 * `release()`, so how many are pending at once depends on the router and the shard, not on the speed of the machine.
 */
class HeldWork {
  readonly started: number[] = [];
  readonly finished: number[] = [];
  inFlight = 0;
  peak = 0;
  release!: () => void;
  readonly released = new Promise<void>((resolve) => (this.release = resolve));
}

const HELD_WORK = Symbol('HELD_WORK');

@Injectable()
class HeldMessageHandler {
  constructor(@Inject(HELD_WORK) private readonly work: HeldWork) {}

  @OnEvent('MESSAGE_CREATE')
  async onMessage(_message: unknown, context: GatewayEventContext): Promise<void> {
    const work = this.work;
    work.started.push(context.sequence);
    work.inFlight++;
    work.peak = Math.max(work.peak, work.inFlight);
    await work.released;
    work.inFlight--;
    work.finished.push(context.sequence);
  }
}

/** `global.gc` without `--expose-gc`: the flag set at run time, the function taken from a fresh context. */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const harness = new NestHarness();

void afterEach(async () => {
  await harness.cleanup();
});

async function startApp(gateway: LocalGateway, maxPendingHandlersPerShard: number) {
  const work = new HeldWork();
  const app = await harness.app({
    imports: [GatewayModule.forRoot(moduleOptions(gateway, { maxPendingHandlersPerShard }))],
    providers: [{ provide: HELD_WORK, useValue: work }, HeldMessageHandler],
  });
  return { app, work, shards: app.get(ShardService), cluster: app.get(Cluster), router: app.get(GatewayEventRouter) };
}

function flood(gateway: LocalGateway, count: number): number[] {
  const sent: number[] = [];
  for (let i = 0; i < count; i++) sent.push(gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(i, { content: `flood ${i}` })));
  return sent;
}

void describe('backpressure: slow async handlers', () => {
  void it('3000 events into held handlers with maxPendingHandlersPerShard 50: reading pauses, nothing lost, bounded, heartbeats go on', { timeout: 60_000 }, async () => {
    const gc = exposeGc();
    const gateway = await harness.gateway();
    const { work, shards, cluster, router } = await startApp(gateway, LIMIT);
    const pauses: { from: number; to: number | null }[] = [];
    const debugSub = cluster.debug$.subscribe(({ message }) => {
      if (message.startsWith('reading paused')) pauses.push({ from: Date.now(), to: null });
      else if (message.startsWith('reading resumed') && pauses.length > 0) pauses[pauses.length - 1].to = Date.now();
    });

    // The cost of holding 3000 decoded events at once: what the heap would carry if every event were read and its
    // handler started right away.
    const texts = Array.from({ length: 3_000 }, (_, i) => JSON.stringify(createMessage(i, { content: `flood ${i}` })));
    gc();
    const beforeControl = process.memoryUsage().heapUsed;
    const held = texts.map((text) => JSON.parse(text) as unknown);
    gc();
    const controlCost = process.memoryUsage().heapUsed - beforeControl;
    expect(held).toHaveLength(3_000);
    held.length = 0;

    const sent = flood(gateway, 3_000);
    gc();
    const baseline = process.memoryUsage().heapUsed;
    let maxGrowth = 0;
    try {
      // The 50th pending handler pauses reading; a scheduled heartbeat goes out while it stays paused.
      await eventually(() => shards.info(0)!.paused, 15_000, 'reading paused');
      const fromPause = gateway.frames.length;
      await gateway.waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat && f.shardId === 0, 15_000, fromPause);
      const whilePaused = shards.info(0)!;
      expect(whilePaused.paused).toBe(true);
      expect(whilePaused.lagMs).toBeGreaterThan(0);
      expect(router.pendingByShard()[0]).toBe(LIMIT);
      expect(work.started).toEqual(sent.slice(0, LIMIT));
      // Live heap with the flood waiting unread.
      gc();
      maxGrowth = process.memoryUsage().heapUsed - baseline;

      work.release();
      await eventually(() => work.finished.length === sent.length, 30_000, 'every event handled');
      gc();
      maxGrowth = Math.max(maxGrowth, process.memoryUsage().heapUsed - baseline);
    } finally {
      debugSub.unsubscribe();
    }

    // Nothing lost: every sequence handled once, started in order.
    expect(work.started).toEqual(sent);
    expect([...work.finished].sort((a, b) => a - b)).toEqual(sent);
    // Never more handlers pending than the limit.
    expect(work.peak).toBe(LIMIT);
    const info = shards.info(0)!;
    expect(info.totalPausedMs).toBeGreaterThan(0);
    expect(info.paused).toBe(false);
    // Heartbeats went on while reading was paused, and the missing ACKs (unread) did not look like a zombie.
    const beats = gateway.framesOf(GatewayOpcodes.Heartbeat, 0).map((f) => f.at);
    const beatsWhilePaused = beats.filter((at) => pauses.some((p) => at >= p.from && at <= (p.to ?? Date.now())));
    expect(pauses.length).toBeGreaterThan(0);
    expect(beatsWhilePaused.length).toBeGreaterThanOrEqual(1);
    // At least one beat per three intervals over the whole flood.
    const flowMs = pauses[pauses.length - 1].to! - pauses[0].from;
    expect(beats.filter((at) => at >= pauses[0].from && at <= pauses[pauses.length - 1].to!).length).toBeGreaterThanOrEqual(
      Math.floor(flowMs / (TEST_HEARTBEAT_MS * 3)),
    );
    expect(gateway.connections).toHaveLength(1);
    expect(gateway.framesOf(GatewayOpcodes.Resume)).toHaveLength(0);
    // Memory stayed bounded: the live heap grew by far less than 3000 decoded events cost.
    expect(controlCost).toBeGreaterThan(1_000_000);
    expect(maxGrowth).toBeLessThan(controlCost / 4);
  });

  void it('the limit is what bounds pending handlers: at most 50 with it, most of the flood with it out of reach', { timeout: 40_000 }, async () => {
    // With maxPendingHandlersPerShard 50 the shard stops reading at the 50th pending handler, so the peak stays at
    // 50. Without that protection (the router never pausing the shard) every event of the flood would be read and
    // its handler started as fast as the socket delivers: the second app below, whose limit can never be reached,
    // shows the peak that the first assertion would then see (up to the whole flood, far above 50).
    // Handlers are held until released, so the peak is what the shard read, whatever the speed of the machine.
    const gateway = await harness.gateway();
    const limited = await startApp(gateway, LIMIT);
    const sent = flood(gateway, 300);
    await eventually(() => limited.shards.info(0)!.paused, 15_000, 'reading paused');
    expect(limited.work.started).toEqual(sent.slice(0, LIMIT));
    limited.work.release();
    await eventually(() => limited.work.finished.length === sent.length, 20_000, 'the limited flood handled');
    expect(limited.work.peak).toBeLessThanOrEqual(LIMIT);
    expect(limited.work.started).toEqual(sent);
    await harness.closeApp(limited.app);

    const other = await harness.gateway();
    const unlimited = await startApp(other, 100_000);
    const sentAgain = flood(other, 300);
    await eventually(() => unlimited.work.started.length === sentAgain.length, 20_000, 'the unlimited flood started');
    expect(unlimited.work.started).toEqual(sentAgain);
    expect(unlimited.work.peak).toBeGreaterThan(LIMIT * 3);
    unlimited.work.release();
    await eventually(() => unlimited.work.finished.length === sentAgain.length, 20_000, 'the unlimited flood handled');
    expect(unlimited.shards.info(0)!.totalPausedMs).toBe(0);
  });
});
