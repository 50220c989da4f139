import { afterEach, beforeEach, describe, it } from 'node:test';
import { expect } from 'expect';
import {
  Catch,
  Injectable,
  UseFilters,
  UseGuards,
  UseInterceptors,
  UsePipes,
  type ArgumentMetadata,
  type ArgumentsHost,
  type CallHandler,
  type CanActivate,
  type ExceptionFilter,
  type ExecutionContext,
  type NestInterceptor,
  type PipeTransform,
} from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { tap, type Observable } from 'rxjs';
import {
  EventContext,
  EventData,
  GATEWAY_CONTEXT_TYPE,
  GatewayModule,
  OnEvent,
  type GatewayEventContext,
  type GatewayEventData,
} from '../../lib/nest';
import { createMessage } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { CapturingLogger, NestHarness, handlersSettled, moduleOptions } from './nest-test-kit';

type Message = GatewayEventData<'MESSAGE_CREATE'>;

/** Everything the enhancers and handlers below did, in order; reset before each test. */
const trace: string[] = [];
const guardCalls: { type: string; data: unknown; context: unknown; handler: string; className: string }[] = [];
const received: Record<string, unknown[]> = {};

function record(key: string, value: unknown): void {
  (received[key] ??= []).push(value);
}

/** Lets through messages whose content is not 'blocked'. */
@Injectable()
class ContentGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const data = context.getArgByIndex<Message>(0);
    guardCalls.push({
      type: context.getType(),
      data,
      context: context.getArgByIndex(1),
      handler: context.getHandler().name,
      className: context.getClass().name,
    });
    return data.content !== 'blocked';
  }
}

/** Records around the handler, with the handler's result. */
@Injectable()
class TraceInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    trace.push(`before ${context.getType()} ${context.getArgByIndex<GatewayEventContext>(1).event}`);
    return next.handle().pipe(tap((result) => trace.push(`after ${String(result)}`)));
  }
}

/** Every parameter the pipes below were applied to: `type` and `data` of its metadata. */
const pipeCalls: { type: string; data: unknown }[] = [];

/** Upper-cases the content of the event data (metadata type 'body'); leaves other parameters alone. */
@Injectable()
class UpperCaseContentPipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    pipeCalls.push({ type: metadata.type, data: metadata.data });
    if (metadata.type !== 'body') return value;
    if (typeof value === 'string') return value.toUpperCase();
    const message = value as Message;
    return { ...message, content: message.content.toUpperCase() };
  }
}

/** Trims a string. */
@Injectable()
class TrimPipe implements PipeTransform {
  transform(value: unknown): unknown {
    return typeof value === 'string' ? value.trim() : value;
  }
}

/** A provider the prefix pipe depends on. */
@Injectable()
class PrefixConfig {
  readonly prefix = 'piped: ';
}

/** Prefixes a string; its configuration is injected by Nest. */
@Injectable()
class PrefixPipe implements PipeTransform {
  constructor(private readonly config: PrefixConfig) {}

  transform(value: unknown): unknown {
    return `${this.config.prefix}${String(value)}`;
  }
}

class RecoverableError extends Error {}

/** Catches RecoverableError and handles it by returning a value. */
@Catch(RecoverableError)
class RecoverFilter implements ExceptionFilter {
  catch(exception: RecoverableError, host: ArgumentsHost): string {
    const context = host.getArgByIndex<GatewayEventContext>(1);
    trace.push(`filter ${host.getType()} ${context.event} shard ${context.shardId}: ${exception.message}`);
    return 'recovered';
  }
}

/** Catches everything but returns nothing: in Nest 12 that leaves the error unhandled. */
@Catch()
class SilentFilter implements ExceptionFilter {
  catch(exception: Error): void {
    trace.push(`silent filter: ${exception.message}`);
  }
}

@Injectable()
class GuardedHandlers {
  @OnEvent('MESSAGE_CREATE')
  @UseGuards(ContentGuard)
  guarded(message: Message): void {
    record('guarded', message.content);
  }

  @OnEvent('MESSAGE_CREATE')
  unguarded(message: Message): void {
    record('unguarded', message.content);
  }
}

@Injectable()
@UseGuards(ContentGuard)
class ClassGuardedHandlers {
  @OnEvent('MESSAGE_CREATE')
  first(message: Message): void {
    record('classGuarded', message.content);
  }
}

@Injectable()
class InterceptedHandlers {
  @OnEvent('MESSAGE_CREATE')
  @UseInterceptors(TraceInterceptor)
  async intercepted(message: Message): Promise<string> {
    await new Promise((resolve) => setImmediate(resolve));
    trace.push(`handler ${message.content}`);
    return `result of ${message.content}`;
  }
}

@Injectable()
class PipedHandlers {
  @OnEvent('MESSAGE_CREATE')
  @UsePipes(UpperCaseContentPipe)
  withUsePipes(message: Message, context: GatewayEventContext): void {
    record('usePipes', { content: message.content, context });
  }

  @OnEvent('MESSAGE_CREATE')
  withParamPipe(@EventData(undefined, UpperCaseContentPipe) message: Message, @EventContext() context: GatewayEventContext): void {
    record('paramPipe', { content: message.content, context });
  }

  @OnEvent('MESSAGE_CREATE')
  withPropertyPipes(@EventData('content', TrimPipe, UpperCaseContentPipe) content: string): void {
    record('propertyPipes', content);
  }

  @OnEvent('MESSAGE_CREATE')
  withInjectedPipe(@EventData('content', PrefixPipe) content: string): void {
    record('injectedPipe', content);
  }

  @OnEvent('MESSAGE_CREATE')
  unpiped(message: Message): void {
    record('unpiped', message.content);
  }
}

@Injectable()
class ParamHandlers {
  @OnEvent('MESSAGE_CREATE')
  properties(
    @EventContext('shardId') shardId: number,
    @EventData('content') content: string,
    @EventContext('sequence') sequence: number,
    @EventData() message: Message,
    @EventContext() context: GatewayEventContext,
  ): void {
    record('params', { shardId, content, sequence, messageId: message.id, context });
  }
}

@Injectable()
class FilteredHandlers {
  @OnEvent('MESSAGE_CREATE')
  @UseFilters(RecoverFilter)
  recovers(message: Message): void {
    trace.push(`recovers runs: ${message.content}`);
    throw new RecoverableError(`cannot handle ${message.content}`);
  }

  @OnEvent('MESSAGE_CREATE')
  @UseFilters(SilentFilter)
  silentlyFiltered(message: Message): void {
    throw new Error(`silently filtered ${message.content}`);
  }

  @OnEvent('MESSAGE_CREATE')
  @UseFilters(RecoverFilter)
  otherError(message: Message): void {
    throw new TypeError(`not recoverable ${message.content}`);
  }
}

/** Global guard: blocks any message whose content is 'global-block'. */
@Injectable()
class GlobalBlockGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    trace.push(`global guard ${context.getType()} ${context.getClass().name}.${context.getHandler().name}`);
    return context.getArgByIndex<Message>(0).content !== 'global-block';
  }
}

/** Global interceptor: records which handlers it wraps. */
@Injectable()
class GlobalTraceInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    trace.push(`global interceptor before ${context.getClass().name}.${context.getHandler().name}`);
    return next.handle().pipe(tap(() => trace.push(`global interceptor after ${context.getClass().name}.${context.getHandler().name}`)));
  }
}

@Injectable()
class PlainHandler {
  @OnEvent('MESSAGE_CREATE')
  plain(message: Message): void {
    record('plain', message.content);
  }
}

const harness = new NestHarness();

void beforeEach(() => {
  trace.splice(0);
  guardCalls.splice(0);
  pipeCalls.splice(0);
  for (const key of Object.keys(received)) delete received[key];
});

void afterEach(async () => {
  await harness.cleanup();
});

async function appWith(providers: unknown[], logger?: CapturingLogger) {
  const gateway = await harness.gateway();
  const app = await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway))], providers: providers as never[] }, logger);
  return { gateway, app };
}

function say(gateway: Awaited<ReturnType<typeof appWith>>['gateway'], seed: number, content: string): number {
  return gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(seed, { content }));
}

void describe('GatewayModule enhancers', () => {
  void it('a guard that returns false keeps its handler from running, and sees the discord-gateway context type', async () => {
    const { gateway, app } = await appWith([GuardedHandlers, ClassGuardedHandlers]);
    const s1 = say(gateway, 1, 'blocked');
    const s2 = say(gateway, 2, 'allowed');
    await eventually(() => (received.unguarded ?? []).length === 2 && (received.guarded ?? []).length === 1, 15_000, 'handlers');
    await eventually(() => (received.classGuarded ?? []).length === 1, 15_000, 'class-guarded handler');
    await handlersSettled(app);

    expect(received.unguarded).toEqual(['blocked', 'allowed']);
    expect(received.guarded).toEqual(['allowed']);
    expect(received.classGuarded).toEqual(['allowed']);

    const methodGuard = guardCalls.filter((c) => c.className === 'GuardedHandlers');
    expect(methodGuard).toHaveLength(2);
    expect(guardCalls).toHaveLength(4);
    for (const call of guardCalls) expect(call.type).toBe(GATEWAY_CONTEXT_TYPE);
    expect(methodGuard.map((c) => c.handler)).toEqual(['guarded', 'guarded']);
    expect(methodGuard.map((c) => c.context)).toEqual([
      { event: 'MESSAGE_CREATE', shardId: 0, sequence: s1, sessionId: expect.any(String) },
      { event: 'MESSAGE_CREATE', shardId: 0, sequence: s2, sessionId: expect.any(String) },
    ]);
    expect((methodGuard[0].data as Message).content).toBe('blocked');
  });

  void it('an interceptor runs before and after the handler and sees its result', async () => {
    const { gateway } = await appWith([InterceptedHandlers]);
    say(gateway, 1, 'one');
    await eventually(() => trace.length >= 3, 15_000, 'interceptor trace');
    say(gateway, 2, 'two');
    await eventually(() => trace.length >= 6, 15_000, 'interceptor trace');
    expect(trace).toEqual([
      'before discord-gateway MESSAGE_CREATE',
      'handler one',
      'after result of one',
      'before discord-gateway MESSAGE_CREATE',
      'handler two',
      'after result of two',
    ]);
  });

  void it('pipes from @UsePipes and from @EventData(property, ...pipes) transform what the handler receives', async () => {
    const { gateway, app } = await appWith([PipedHandlers, PrefixConfig]);
    const s = say(gateway, 1, '  Mixed Case  ');
    await eventually(() => Object.keys(received).length === 5, 15_000, 'five handlers');
    await handlersSettled(app);

    const context = { event: 'MESSAGE_CREATE', shardId: 0, sequence: s, sessionId: expect.any(String) };
    expect(received.usePipes).toEqual([{ content: '  MIXED CASE  ', context }]);
    expect(received.paramPipe).toEqual([{ content: '  MIXED CASE  ', context }]);
    expect(received.propertyPipes).toEqual(['MIXED CASE']);
    // A pipe class given only to @EventData is created by Nest, with its dependencies.
    expect(received.injectedPipe).toEqual(['piped:   Mixed Case  ']);
    // The transformation is a copy: a handler without pipes sees the original data.
    expect(received.unpiped).toEqual(['  Mixed Case  ']);
    // Pipes tell the event data (type 'body', as microservice payloads) from the context (type 'custom').
    expect(pipeCalls.filter((c) => c.type === 'body')).toHaveLength(3);
    expect(pipeCalls.filter((c) => c.type === 'custom')).toHaveLength(1);
    expect(pipeCalls).toContainEqual({ type: 'body', data: 'content' });
  });

  void it('@EventData(property) and @EventContext(property) extract one property, in any parameter order', async () => {
    const { gateway } = await appWith([ParamHandlers]);
    const message = createMessage(7, { content: 'picked apart' });
    const s = gateway.dispatch(0, 'MESSAGE_CREATE', message);
    await eventually(() => (received.params ?? []).length === 1, 15_000, 'params handler');
    expect(received.params).toEqual([
      {
        shardId: 0,
        content: 'picked apart',
        sequence: s,
        messageId: message.id,
        context: { event: 'MESSAGE_CREATE', shardId: 0, sequence: s, sessionId: expect.any(String) },
      },
    ]);
  });

  void it('an exception filter catches a handler error and handles it by returning a value; one that returns undefined does not', async () => {
    const logger = new CapturingLogger();
    const { gateway, app } = await appWith([FilteredHandlers, PlainHandler], logger);
    say(gateway, 1, 'first');
    await eventually(() => logger.of('error').some((l) => l.message.includes('otherError')), 15_000, 'unhandled errors logged');
    await eventually(() => logger.of('error').some((l) => l.message.includes('silentlyFiltered')), 15_000, 'unhandled errors logged');
    await handlersSettled(app);

    expect(trace).toContain('recovers runs: first');
    expect(trace).toContain('filter discord-gateway MESSAGE_CREATE shard 0: cannot handle first');
    expect(trace).toContain('silent filter: silently filtered first');
    expect(received.plain).toEqual(['first']);

    const routerErrors = logger.of('error').filter((l) => l.message.startsWith('Handler '));
    // The handled error is not reported; the error the filter does not catch and the one it leaves unhandled are.
    expect(routerErrors.some((l) => l.message.includes('FilteredHandlers.recovers'))).toBe(false);
    expect(routerErrors.filter((l) => l.message.includes('FilteredHandlers.otherError'))).toHaveLength(1);
    expect(routerErrors.find((l) => l.message.includes('FilteredHandlers.otherError'))!.message).toContain('not recoverable first');
    expect(routerErrors.filter((l) => l.message.includes('FilteredHandlers.silentlyFiltered'))).toHaveLength(1);
  });

  void it('global guards and interceptors from APP_GUARD and APP_INTERCEPTOR apply to every handler', async () => {
    const gateway = await harness.gateway();
    const app = await harness.app({
      imports: [GatewayModule.forRoot(moduleOptions(gateway))],
      providers: [
        PlainHandler,
        ParamHandlers,
        { provide: APP_GUARD, useClass: GlobalBlockGuard },
        { provide: APP_INTERCEPTOR, useClass: GlobalTraceInterceptor },
      ],
    });
    say(gateway, 1, 'global-block');
    say(gateway, 2, 'passes');
    await eventually(() => (received.plain ?? []).length === 1 && (received.params ?? []).length === 1, 15_000, 'handlers');
    await eventually(() => trace.filter((t) => t.startsWith('global interceptor after')).length === 2, 15_000, 'interceptor');
    await handlersSettled(app);

    expect(received.plain).toEqual(['passes']);
    expect((received.params as { content: string }[]).map((p) => p.content)).toEqual(['passes']);
    expect(trace.filter((t) => t.startsWith('global guard')).sort()).toEqual([
      'global guard discord-gateway ParamHandlers.properties',
      'global guard discord-gateway ParamHandlers.properties',
      'global guard discord-gateway PlainHandler.plain',
      'global guard discord-gateway PlainHandler.plain',
    ]);
    expect(trace.filter((t) => t.startsWith('global interceptor')).sort()).toEqual([
      'global interceptor after ParamHandlers.properties',
      'global interceptor after PlainHandler.plain',
      'global interceptor before ParamHandlers.properties',
      'global interceptor before PlainHandler.plain',
    ]);
  });
});
