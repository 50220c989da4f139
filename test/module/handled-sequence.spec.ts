import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { Injectable } from '@nestjs/common';
import { InMemorySessionStore } from '../../lib/core';
import { OnEvent, type GatewayEventContext } from '../../lib/nest';
import { createMessage } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { NestHarness, startTwoShardApp } from './nest-test-kit';

const harness = new NestHarness();

/** Handles MESSAGE_CREATE; the message with content 'hold' stays pending until `release()`. */
@Injectable()
class HoldingHandler {
  readonly handled: number[] = [];
  private releaseHeld: (() => void) | null = null;

  @OnEvent('MESSAGE_CREATE')
  onMessage(data: { content: string }, context: GatewayEventContext): Promise<void> | void {
    if (data.content !== 'hold') {
      this.handled.push(context.sequence);
      return;
    }
    return new Promise<void>((resolve) => {
      this.releaseHeld = () => {
        this.handled.push(context.sequence);
        resolve();
      };
    });
  }

  get holding(): boolean {
    return this.releaseHeld !== null;
  }

  release(): void {
    this.releaseHeld?.();
    this.releaseHeld = null;
  }
}

void describe('The handled sequence saved while events arrive (sequenceSaveIntervalMs)', () => {
  afterEach(() => harness.cleanup());

  void it('is saved at the end of the turn, and stays below an event whose handler has not settled', async () => {
    const store = new InMemorySessionStore();
    const { gateway, app } = await startTwoShardApp(harness, { heartbeatInterval: 5_000 }, { sessionStore: store, sequenceSaveIntervalMs: 0, sessionSaveIntervalMs: 600_000 }, [
      HoldingHandler,
    ]);
    const handler = app.get(HoldingHandler);
    const saved = async () => (await store.get(0))?.sequence ?? null;

    const first = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1, { content: 'a' }));
    await eventually(() => handler.handled.includes(first), 15_000, 'the first message handled');
    let sequence: number | null = null;
    await eventually(() => {
      void saved().then((s) => (sequence = s));
      return sequence === first;
    }, 5_000, `sequence ${first} saved`);

    const held = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(2, { content: 'hold' }));
    const after = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(3, { content: 'c' }));
    await eventually(() => handler.holding && handler.handled.includes(after), 15_000, 'the held message pending and the next one handled');
    // The shard has received `after`, but the event before it is still being handled: the saved sequence stays below it.
    const later = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(4, { content: 'd' }));
    await eventually(() => handler.handled.includes(later), 15_000, 'a later message handled');
    await new Promise((resolve) => setImmediate(resolve));
    expect(await saved()).toBe(held - 1);

    handler.release();
    await eventually(() => {
      void saved().then((s) => (sequence = s));
      return sequence === later;
    }, 5_000, `sequence ${later} saved once the held handler settled`);
  });
});
