import { afterEach, beforeEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { Inject, Injectable, Scope, UseInterceptors, type CallHandler, type NestInterceptor } from '@nestjs/common';
import { REQUEST } from '@nestjs/core';
import type { Observable } from 'rxjs';
import { ClusterService, GatewayModule, OnEvent, type GatewayEventContext, type GatewayEventData } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import { createMessage, type LocalGateway } from '../../lib/nest/testing';
import { eventually, heartbeatRoundTrip } from '../helpers/gateway-test-kit';
import { CapturingLogger, NestHarness, handlersSettled, moduleOptions } from './nest-test-kit';

type Message = GatewayEventData<'MESSAGE_CREATE'>;

const GUILD_ON_SHARD_0 = '81384788765712384';
const GUILD_ON_SHARD_1 = '1023234123812343808';

/** What the handlers below saw; reset before each test. */
const seen = {
  healthy: [] as { content: string; context: GatewayEventContext }[],
  throwing: [] as string[],
  rejecting: [] as string[],
  scoped: [] as { instance: number; request: GatewayEventContext; context: GatewayEventContext; dependency: number }[],
  implicit: [] as number[],
  scopedDependencies: 0,
  scopedHandlers: 0,
};

@Injectable()
class ThrowingHandler {
  @OnEvent('MESSAGE_CREATE')
  explodes(message: Message): void {
    seen.throwing.push(message.content);
    throw new Error(`sync failure on "${message.content}"`);
  }
}

@Injectable()
class RejectingHandler {
  @OnEvent('MESSAGE_CREATE')
  async rejects(message: Message): Promise<void> {
    seen.rejecting.push(message.content);
    await new Promise((resolve) => setImmediate(resolve));
    throw new Error(`async failure on "${message.content}"`);
  }
}

@Injectable()
class PassThroughInterceptor implements NestInterceptor {
  intercept(_context: unknown, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}

@Injectable()
class InterceptedThrowingHandler {
  @OnEvent('MESSAGE_CREATE')
  @UseInterceptors(PassThroughInterceptor)
  explodesThroughInterceptor(message: Message): void {
    throw new Error(`intercepted failure on "${message.content}"`);
  }
}

@Injectable()
class HealthyHandler {
  @OnEvent('MESSAGE_CREATE')
  onMessage(message: Message, context: GatewayEventContext): void {
    seen.healthy.push({ content: message.content, context });
  }
}

/** A request-scoped dependency: one instance per event. */
@Injectable({ scope: Scope.REQUEST })
class PerEventState {
  readonly id = ++seen.scopedDependencies;
}

@Injectable({ scope: Scope.REQUEST })
class ScopedHandler {
  readonly instance = ++seen.scopedHandlers;

  constructor(
    @Inject(REQUEST) private readonly request: GatewayEventContext,
    private readonly state: PerEventState,
  ) {}

  @OnEvent('MESSAGE_CREATE')
  onMessage(_message: Message, context: GatewayEventContext): void {
    seen.scoped.push({ instance: this.instance, request: this.request, context, dependency: this.state.id });
  }
}

/** A default-scoped class that depends on a request-scoped provider, and so is created per event too. */
@Injectable()
class ImplicitlyScopedHandler {
  constructor(private readonly state: PerEventState) {}

  @OnEvent('TYPING_START')
  onTyping(): void {
    seen.implicit.push(this.state.id);
  }
}

const harness = new NestHarness();

void beforeEach(() => {
  seen.healthy.splice(0);
  seen.throwing.splice(0);
  seen.rejecting.splice(0);
  seen.scoped.splice(0);
  seen.implicit.splice(0);
  seen.scopedDependencies = 0;
  seen.scopedHandlers = 0;
});

void afterEach(async () => {
  await harness.cleanup();
});

function say(gateway: LocalGateway, shardId: number, seed: number, content: string): number {
  const guildId = shardId === 0 ? GUILD_ON_SHARD_0 : GUILD_ON_SHARD_1;
  return gateway.dispatch(shardId, 'MESSAGE_CREATE', createMessage(seed, { guildId, content }));
}

void describe('GatewayModule: a failing handler is isolated', () => {
  void it('logs a sync throw and a rejection with the handler, event name and shard id; other handlers and the shards go on', async () => {
    const logger = new CapturingLogger();
    const gateway = await harness.gateway({ shards: 2 });
    const app = await harness.app(
      {
        imports: [GatewayModule.forRoot(moduleOptions(gateway))],
        providers: [ThrowingHandler, RejectingHandler, InterceptedThrowingHandler, HealthyHandler],
      },
      logger,
    );
    const cluster = app.get(ClusterService);
    const routerErrors = () => logger.of('error').filter((l) => l.context === 'GatewayEventRouter');

    const s1 = say(gateway, 1, 1, 'first');
    await eventually(() => routerErrors().length >= 3 && seen.healthy.length >= 1, 15_000, 'three errors and a delivery');

    const errors = routerErrors().map((l) => l.message);
    expect(errors).toHaveLength(3);
    const sync = errors.find((m) => m.includes('ThrowingHandler.explodes'));
    const async = errors.find((m) => m.includes('RejectingHandler.rejects'));
    const intercepted = errors.find((m) => m.includes('InterceptedThrowingHandler.explodesThroughInterceptor'));
    for (const line of [sync, async, intercepted]) {
      expect(line).toBeDefined();
      expect(line).toContain('MESSAGE_CREATE');
      expect(line).toContain('shard 1');
      expect(line).toContain(`sequence ${s1}`);
    }
    expect(sync).toContain('sync failure on "first"');
    expect(async).toContain('async failure on "first"');
    expect(intercepted).toContain('intercepted failure on "first"');
    expect(seen.healthy).toEqual([{ content: 'first', context: { event: 'MESSAGE_CREATE', shardId: 1, sequence: s1, sessionId: expect.any(String) } }]);

    // The shards stay ready (both answer a heartbeat request on their first connection), and later events on both
    // shards reach every handler, the failing ones included.
    await Promise.all([heartbeatRoundTrip(gateway, 0), heartbeatRoundTrip(gateway, 1)]);
    expect(cluster.info().map((s) => s.state)).toEqual([ShardState.Ready, ShardState.Ready]);
    const s2 = say(gateway, 0, 2, 'second');
    const s3 = say(gateway, 1, 3, 'third');
    await eventually(() => seen.healthy.length >= 3 && routerErrors().length >= 9, 15_000, 'later events');
    await handlersSettled(app);

    // Events of different shards may interleave either way.
    const byContent = (a: (string | number)[], b: (string | number)[]) => String(a[0]).localeCompare(String(b[0]));
    expect(seen.healthy.map((h) => [h.content, h.context.shardId, h.context.sequence]).sort(byContent)).toEqual([
      ['first', 1, s1],
      ['second', 0, s2],
      ['third', 1, s3],
    ]);
    expect([...seen.throwing].sort()).toEqual(['first', 'second', 'third']);
    expect([...seen.rejecting].sort()).toEqual(['first', 'second', 'third']);
    expect(routerErrors()).toHaveLength(9);
    expect(routerErrors().filter((l) => l.message.includes('on MESSAGE_CREATE (shard 0'))).toHaveLength(3);
    expect(cluster.allReady).toBe(true);
    expect(gateway.connections).toHaveLength(2);
  });
});

void describe('GatewayModule: request-scoped providers', () => {
  void it('creates a fresh request-scoped handler per event, with the event context as REQUEST', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const app = await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway))], providers: [ScopedHandler, PerEventState, HealthyHandler] });

    const s1 = say(gateway, 0, 1, 'one');
    const s2 = say(gateway, 1, 2, 'two');
    const s3 = say(gateway, 0, 3, 'three');
    await eventually(() => seen.scoped.length >= 3, 15_000, 'three scoped deliveries');
    await handlersSettled(app);

    expect(seen.scoped).toHaveLength(3);
    const bySequence = new Map(seen.scoped.map((entry) => [`${entry.context.shardId}:${entry.context.sequence}`, entry]));
    const expected = [
      { event: 'MESSAGE_CREATE', shardId: 0, sequence: s1, sessionId: expect.any(String) },
      { event: 'MESSAGE_CREATE', shardId: 1, sequence: s2, sessionId: expect.any(String) },
      { event: 'MESSAGE_CREATE', shardId: 0, sequence: s3, sessionId: expect.any(String) },
    ];
    for (const context of expected) {
      const entry = bySequence.get(`${context.shardId}:${context.sequence}`);
      expect(entry).toBeDefined();
      expect(entry!.request).toEqual(context);
      expect(entry!.context).toEqual(context);
    }
    expect(new Set(seen.scoped.map((e) => e.instance)).size).toBe(3);
    expect(new Set(seen.scoped.map((e) => e.dependency)).size).toBe(3);
    // A default-scoped handler in the same app is still a single instance that sees every event.
    expect(seen.healthy).toHaveLength(3);
  });

  void it('creates a class that depends on a request-scoped provider per event too', async () => {
    const gateway = await harness.gateway();
    await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway))], providers: [ImplicitlyScopedHandler, PerEventState] });
    gateway.dispatch(0, 'TYPING_START', { channel_id: '1', user_id: '2', timestamp: 1 });
    gateway.dispatch(0, 'TYPING_START', { channel_id: '1', user_id: '3', timestamp: 2 });
    await eventually(() => seen.implicit.length >= 2, 15_000, 'two deliveries');
    expect([...seen.implicit].sort()).toEqual([1, 2]);
  });

  void it('logs a request-scoped handler that throws with the event name and shard id', async () => {
    const logger = new CapturingLogger();
    const gateway = await harness.gateway();

    @Injectable({ scope: Scope.REQUEST })
    class FailingScopedHandler {
      constructor(@Inject(REQUEST) private readonly request: GatewayEventContext) {}

      @OnEvent('BRAND_NEW_EVENT')
      fail(): void {
        throw new Error(`scoped failure at ${this.request.sequence}`);
      }
    }

    await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway))], providers: [FailingScopedHandler, HealthyHandler] }, logger);
    const s = gateway.dispatch(0, 'BRAND_NEW_EVENT', {});
    const errors = () => logger.of('error').filter((l) => l.context === 'GatewayEventRouter');
    await eventually(() => errors().length >= 1, 15_000, 'an error line');
    expect(errors()[0].message).toContain('FailingScopedHandler.fail');
    expect(errors()[0].message).toContain('BRAND_NEW_EVENT');
    expect(errors()[0].message).toContain('shard 0');
    expect(errors()[0].message).toContain(`scoped failure at ${s}`);

    const later = say(gateway, 0, 1, 'still flowing');
    await eventually(() => seen.healthy.length === 1, 15_000, 'a later event');
    expect(seen.healthy[0].context.sequence).toBe(later);
  });
});
