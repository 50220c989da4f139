import { afterEach, beforeEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { Inject, Injectable, Module } from '@nestjs/common';
import { GatewayIntentBits, GatewayOpcodes } from 'discord-api-types/v10';
import {
  ClusterService,
  GatewayModule,
  OnEvent,
  ShardService,
  type GatewayEventContext,
  type GatewayEventData,
  type GatewayModuleOptions,
  type GatewayOptionsFactory,
} from '../../lib/nest';
import { GatewayOptionsError, ShardState } from '../../lib/core';
import { createMessage, createTypingStart, type LocalGateway } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { CapturingLogger, NestHarness, SHORT_TIMINGS, handlersSettled, moduleOptions, rejectionOf, thrownBy } from './nest-test-kit';

/** Guilds on shard 0 and shard 1 of a two-shard bot: `(id >> 22) % 2`. */
const GUILD_ON_SHARD_0 = '81384788765712384';
const GUILD_ON_SHARD_1 = '1023234123812343808';

interface Received {
  content: string;
  context: GatewayEventContext;
}

/** Events received by the handlers below, reset before each test. */
const seen = {
  messagesA: [] as Received[],
  messagesB: [] as Received[],
  multi: [] as GatewayEventContext[],
  stacked: [] as GatewayEventContext[],
  brandNew: [] as { data: unknown; context: GatewayEventContext }[],
};

@Injectable()
class MessageHandlerA {
  @OnEvent('MESSAGE_CREATE')
  onMessage(message: GatewayEventData<'MESSAGE_CREATE'>, context: GatewayEventContext): void {
    // `message` is typed by the event name: `content` is a string, `author` an APIUser.
    const content: string = message.content;
    const authorId: string = message.author.id;
    if (authorId.length > 0) seen.messagesA.push({ content, context });
  }
}

@Injectable()
class MessageHandlerB {
  @OnEvent('MESSAGE_CREATE')
  async onMessage(message: GatewayEventData<'MESSAGE_CREATE'>, context: GatewayEventContext): Promise<void> {
    await Promise.resolve();
    seen.messagesB.push({ content: message.content, context });
  }
}

@Injectable()
class MultiEventHandler {
  @OnEvent('TYPING_START', 'MESSAGE_REACTION_ADD')
  onEither(_data: unknown, context: GatewayEventContext): void {
    seen.multi.push(context);
  }

  @OnEvent('CHANNEL_CREATE')
  @OnEvent('CHANNEL_DELETE', 'CHANNEL_CREATE')
  onStacked(_data: unknown, context: GatewayEventContext): void {
    seen.stacked.push(context);
  }

  @OnEvent('BRAND_NEW_EVENT')
  onBrandNew(data: unknown, context: GatewayEventContext): void {
    seen.brandNew.push({ data, context });
  }
}

// ---- forRootAsync helpers ------------------------------------------------------------------------

const GATEWAY_CONFIG = Symbol('GATEWAY_CONFIG');

interface GatewayConfig {
  token: string;
  apiUrl: string;
  intents: number;
}

/** Stands in for a ConfigModule: provides and exports the config the gateway options are built from. */
@Module({})
class FakeConfigModule {
  static register(config: GatewayConfig) {
    return { module: FakeConfigModule, providers: [{ provide: GATEWAY_CONFIG, useValue: config }], exports: [GATEWAY_CONFIG] };
  }
}

/** Builds gateway options from the injected config; counts its calls. */
@Injectable()
class GatewayConfigFactory implements GatewayOptionsFactory {
  calls = 0;

  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {}

  createGatewayOptions(): GatewayModuleOptions {
    this.calls++;
    return { ...SHORT_TIMINGS, token: this.config.token, apiUrl: this.config.apiUrl, intents: this.config.intents };
  }
}

/** Provides and exports an options factory, for `useExisting`. */
@Module({})
class GatewayConfigFactoryModule {
  static register(config: GatewayConfig) {
    return {
      module: GatewayConfigFactoryModule,
      imports: [FakeConfigModule.register(config)],
      providers: [GatewayConfigFactory],
      exports: [GatewayConfigFactory],
    };
  }
}

// ---- global module helpers -----------------------------------------------------------------------

@Injectable()
class FeatureService {
  constructor(
    readonly shards: ShardService,
    readonly cluster: ClusterService,
  ) {}
}

/** A feature module that does not import GatewayModule. */
@Module({ providers: [FeatureService], exports: [FeatureService] })
class FeatureModule {}

const harness = new NestHarness();

void beforeEach(() => {
  for (const list of Object.values(seen)) list.splice(0);
});

void afterEach(async () => {
  await harness.cleanup();
});

void describe('GatewayModule: routing events to @OnEvent handlers', () => {
  void it('delivers MESSAGE_CREATE from two shards to the typed handlers of two providers, with shard id and sequence', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const app = await harness.app({
      imports: [GatewayModule.forRoot(moduleOptions(gateway))],
      providers: [MessageHandlerA, MessageHandlerB],
    });
    expect(app.get(ClusterService).info().map((s) => s.id)).toEqual([0, 1]);

    const s0 = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1, { guildId: GUILD_ON_SHARD_0, content: 'on shard zero' }));
    const s1 = gateway.dispatch(1, 'MESSAGE_CREATE', createMessage(2, { guildId: GUILD_ON_SHARD_1, content: 'on shard one' }));
    await eventually(() => seen.messagesA.length >= 2 && seen.messagesB.length >= 2, 15_000, 'two messages per handler');
    await handlersSettled(app);

    for (const received of [seen.messagesA, seen.messagesB]) {
      const byContent = Object.fromEntries(received.map((r) => [r.content, r.context]));
      expect(received).toHaveLength(2);
      // The session id with the sequence identifies the event, for handlers that deduplicate.
      expect(byContent['on shard zero']).toEqual({ event: 'MESSAGE_CREATE', shardId: 0, sequence: s0, sessionId: gateway.sessionOf(0) });
      expect(byContent['on shard one']).toEqual({ event: 'MESSAGE_CREATE', shardId: 1, sequence: s1, sessionId: gateway.sessionOf(1) });
    }
  });

  void it('routes every name of @OnEvent(a, b) and of stacked decorators, once per event, and any unknown event name', async () => {
    const gateway = await harness.gateway();
    const app = await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway))], providers: [MultiEventHandler] });

    const typing = gateway.dispatch(0, 'TYPING_START', createTypingStart(1, GUILD_ON_SHARD_0));
    const reaction = gateway.dispatch(0, 'MESSAGE_REACTION_ADD', { user_id: '1', channel_id: '2', message_id: '3', emoji: { id: null, name: 'x' } });
    const created = gateway.dispatch(0, 'CHANNEL_CREATE', { id: '10', type: 0 });
    const deleted = gateway.dispatch(0, 'CHANNEL_DELETE', { id: '10', type: 0 });
    gateway.dispatch(0, 'CHANNEL_UPDATE', { id: '10', type: 0 });
    const brandNew = gateway.dispatch(0, 'BRAND_NEW_EVENT', { shiny: true, nested: { list: [1, 2] } });
    // BRAND_NEW_EVENT went last on the shard: once it is handled, every event before it has been routed.
    await eventually(() => seen.brandNew.length >= 1 && seen.stacked.length >= 2 && seen.multi.length >= 2, 15_000, 'all events');
    await handlersSettled(app);

    expect(seen.multi.map((c) => [c.event, c.sequence])).toEqual([
      ['TYPING_START', typing],
      ['MESSAGE_REACTION_ADD', reaction],
    ]);
    // CHANNEL_CREATE is named twice across the stacked decorators but is delivered once; CHANNEL_UPDATE not at all.
    expect(seen.stacked.map((c) => [c.event, c.sequence])).toEqual([
      ['CHANNEL_CREATE', created],
      ['CHANNEL_DELETE', deleted],
    ]);
    expect(seen.brandNew).toEqual([
      { data: { shiny: true, nested: { list: [1, 2] } }, context: { event: 'BRAND_NEW_EVENT', shardId: 0, sequence: brandNew, sessionId: expect.any(String) } },
    ]);
  });
});

void describe('GatewayModule: registration', () => {
  void it('forRootAsync builds the options with useFactory from an imported config module and inject', async () => {
    const gateway = await harness.gateway();
    const intents = GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessages | GatewayIntentBits.DirectMessages;
    const factoryCalls: GatewayConfig[] = [];
    const app = await harness.app({
      imports: [
        GatewayModule.forRootAsync({
          imports: [FakeConfigModule.register({ token: gateway.token, apiUrl: gateway.apiUrl, intents })],
          inject: [GATEWAY_CONFIG],
          useFactory: async (config: GatewayConfig) => {
            factoryCalls.push(config);
            await new Promise((resolve) => setImmediate(resolve));
            return moduleOptions(gateway, { token: config.token, apiUrl: config.apiUrl, intents: config.intents });
          },
        }),
      ],
      providers: [MessageHandlerA],
    });

    expect(factoryCalls).toEqual([{ token: gateway.token, apiUrl: gateway.apiUrl, intents }]);
    const identifies = gateway.framesOf(GatewayOpcodes.Identify);
    expect(identifies).toHaveLength(1);
    expect(identifies[0].d.intents).toBe(intents);
    expect(app.get(ClusterService).allReady).toBe(true);

    const s = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1, { content: 'async options' }));
    await eventually(() => seen.messagesA.length === 1, 15_000, 'a message');
    expect(seen.messagesA[0]).toEqual({ content: 'async options', context: { event: 'MESSAGE_CREATE', shardId: 0, sequence: s, sessionId: expect.any(String) } });
  });

  void it('forRootAsync builds the options with useClass, the class getting its own dependencies from imports', async () => {
    const gateway = await harness.gateway();
    const intents = GatewayIntentBits.Guilds | GatewayIntentBits.GuildVoiceStates;
    const app = await harness.app({
      imports: [
        GatewayModule.forRootAsync({
          imports: [FakeConfigModule.register({ token: gateway.token, apiUrl: gateway.apiUrl, intents })],
          useClass: GatewayConfigFactory,
        }),
      ],
    });
    expect(gateway.framesOf(GatewayOpcodes.Identify).map((f) => f.d.intents)).toEqual([intents]);
    expect(app.get(ClusterService).allReady).toBe(true);
  });

  void it('forRootAsync builds the options with useExisting, reusing the instance an imported module exports', async () => {
    const gateway = await harness.gateway();
    const intents = GatewayIntentBits.Guilds | GatewayIntentBits.GuildMembers;
    const app = await harness.app({
      imports: [
        GatewayModule.forRootAsync({
          imports: [GatewayConfigFactoryModule.register({ token: gateway.token, apiUrl: gateway.apiUrl, intents })],
          useExisting: GatewayConfigFactory,
        }),
      ],
    });
    expect(gateway.framesOf(GatewayOpcodes.Identify).map((f) => f.d.intents)).toEqual([intents]);
    // The exported instance is the one that built the options: no second instance was created.
    expect(app.get(GatewayConfigFactory, { strict: false }).calls).toBe(1);
  });

  void it('forRootAsync takes the providers its inject needs from provideInjectionTokensFrom', async () => {
    const gateway = await harness.gateway();
    const config: GatewayConfig = { token: gateway.token, apiUrl: gateway.apiUrl, intents: GatewayIntentBits.GuildMessages };
    const app = await harness.app({
      imports: [
        GatewayModule.forRootAsync({
          inject: [GATEWAY_CONFIG],
          provideInjectionTokensFrom: [{ provide: GATEWAY_CONFIG, useValue: config }, { provide: 'unused', useValue: 1 }],
          useFactory: (given: GatewayConfig) => moduleOptions(gateway, { token: given.token, intents: given.intents }),
        }),
      ],
    });
    expect(gateway.framesOf(GatewayOpcodes.Identify).map((frame) => frame.d.intents)).toEqual([GatewayIntentBits.GuildMessages]);
    expect(app.get(ClusterService).allReady).toBe(true);
  });

  void it('forRootAsync without useFactory, useClass or useExisting throws a GatewayOptionsError', () => {
    let thrown: unknown;
    try {
      GatewayModule.forRootAsync({ imports: [] });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(GatewayOptionsError);
    expect((thrown as GatewayOptionsError).option).toBe('forRootAsync');
  });

  void it('global: true makes ShardService and ClusterService injectable in a module that does not import GatewayModule', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const app = await harness.app({ imports: [GatewayModule.forRoot({ ...moduleOptions(gateway), global: true }), FeatureModule] });
    const feature = app.get(FeatureService);
    expect(feature.shards).toBeInstanceOf(ShardService);
    expect(feature.shards).toBe(app.get(ShardService));
    expect(feature.shards.info().map((s) => s.id)).toEqual([0, 1]);
    expect(feature.cluster.allReady).toBe(true);
  });

  void it('global: true works with forRootAsync too', async () => {
    const gateway = await harness.gateway();
    const app = await harness.app({
      imports: [GatewayModule.forRootAsync({ global: true, useFactory: () => moduleOptions(gateway) }), FeatureModule],
    });
    expect(app.get(FeatureService).shards.info()).toHaveLength(1);
  });

  void it('without global, a module that does not import GatewayModule cannot inject ShardService', async () => {
    const gateway = await harness.gateway();
    const error = await rejectionOf(
      harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway)), FeatureModule] }, new CapturingLogger()),
    );
    expect(String((error as Error).message)).toMatch(/ShardService/);
    expect(gateway.connections).toHaveLength(0);
  });
});

void describe('GatewayModule: option validation', () => {
  const cases: { name: string; options: (gateway: LocalGateway) => unknown; option: string }[] = [
    { name: 'largeThreshold: 10', options: (g) => moduleOptions(g, { largeThreshold: 10 }), option: 'largeThreshold' },
    { name: 'shards { total: 2, ids: [5] }', options: (g) => moduleOptions(g, { shards: { total: 2, ids: [5] } }), option: 'shards.ids' },
    { name: "shutdown: 'x'", options: (g) => moduleOptions(g, { shutdown: 'x' as never }), option: 'shutdown' },
    { name: 'an empty token', options: (g) => moduleOptions(g, { token: '' }), option: 'token' },
    { name: "autoConnect: 'yes'", options: (g) => moduleOptions(g, { autoConnect: 'yes' as never }), option: 'autoConnect' },
    { name: 'memberRequestCooldownMs: -1', options: (g) => moduleOptions(g, { memberRequestCooldownMs: -1 }), option: 'memberRequestCooldownMs' },
    { name: 'identifyWindowMs: 0', options: (g) => moduleOptions(g, { identifyWindowMs: 0 }), option: 'identifyWindowMs' },
    { name: 'backoff.baseMs: 0', options: (g) => moduleOptions(g, { backoff: { baseMs: 0, maxMs: 10 } }), option: 'backoff.baseMs' },
  ];

  for (const { name, options, option } of cases) {
    void it(`forRoot throws a GatewayOptionsError naming ${option} on ${name}, to its caller, opening no connection`, async () => {
      const gateway = await harness.gateway();
      const error = thrownBy(() => GatewayModule.forRoot(options(gateway) as GatewayModuleOptions));
      expect(error).toBeInstanceOf(GatewayOptionsError);
      expect((error as GatewayOptionsError).option).toBe(option);
      expect((error as Error).message).toContain(`"${option}"`);
      expect(gateway.connections).toHaveLength(0);
    });
  }

  void it("forRoot and forRootAsync throw a GatewayOptionsError naming global on global: 'yes', to their callers", async () => {
    const gateway = await harness.gateway();
    const errors = [
      thrownBy(() => GatewayModule.forRoot({ ...moduleOptions(gateway), global: 'yes' as never })),
      thrownBy(() => GatewayModule.forRootAsync({ global: 'yes' as never, useFactory: () => moduleOptions(gateway) })),
    ];
    for (const error of errors) {
      expect(error).toBeInstanceOf(GatewayOptionsError);
      expect((error as GatewayOptionsError).option).toBe('global');
    }
    expect(gateway.connections).toHaveLength(0);
  });

  void it('validates options built by forRootAsync the same way', async () => {
    const gateway = await harness.gateway();
    const error = await rejectionOf(
      harness.app(
        { imports: [GatewayModule.forRootAsync({ useFactory: async () => moduleOptions(gateway, { largeThreshold: 10 }) })] },
        new CapturingLogger(),
      ),
    );
    expect(error).toBeInstanceOf(GatewayOptionsError);
    expect((error as Error).message).toContain('largeThreshold');
  });
});

void describe('GatewayModule: autoConnect', () => {
  void it('with autoConnect: false opens no connection until ClusterService.up(), then routes events', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const app = await harness.app({
      imports: [GatewayModule.forRoot(moduleOptions(gateway, { autoConnect: false }))],
      providers: [MessageHandlerA],
    });
    const cluster = app.get(ClusterService);
    // app.init() has resolved: it is where the gateway would have connected (it waits for READY by default).
    expect(gateway.connections).toHaveLength(0);
    expect(cluster.info()).toEqual([]);
    expect(cluster.allReady).toBe(false);
    expect(cluster.total).toBe(0);

    await cluster.up();
    expect(gateway.framesOf(GatewayOpcodes.Identify).map((f) => f.shardId).sort()).toEqual([0, 1]);
    expect(cluster.info().map((s) => s.state)).toEqual([ShardState.Ready, ShardState.Ready]);
    expect(cluster.allReady).toBe(true);

    const s = gateway.dispatch(1, 'MESSAGE_CREATE', createMessage(1, { guildId: GUILD_ON_SHARD_1, content: 'after up' }));
    await eventually(() => seen.messagesA.length === 1, 15_000, 'a message');
    expect(seen.messagesA[0].context).toEqual({ event: 'MESSAGE_CREATE', shardId: 1, sequence: s, sessionId: gateway.sessionOf(1) });
  });
});
