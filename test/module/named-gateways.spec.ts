import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { Controller, Get, Injectable, Module, type INestApplication } from '@nestjs/common';
import { HealthCheckService } from '@nestjs/terminus';
import { GatewayOpcodes, PresenceUpdateStatus, type GatewayMessageCreateDispatchData } from 'discord-api-types/v10';
import { Registry } from 'prom-client';
import { Subject } from 'rxjs';
import {
  ClusterService,
  GatewayModule,
  InjectClusterService,
  InjectShardService,
  OnEvent,
  ShardService,
  getGatewayToken,
  type GatewayEventContext,
} from '../../lib/nest';
import { GatewayOptionsError, ShardState } from '../../lib/core';
import { GatewayHealthIndicator, GatewayHealthModule } from '../../lib/health';
import { GatewayMetrics, GatewayMetricsModule } from '../../lib/metrics';
import { GatewayTestingModule, TestingGateway, createMessage, type LocalGateway } from '../../lib/nest/testing';
import { waitFor } from '../helpers/gateway-test-kit';
import { CapturingLogger, NestHarness, moduleOptions, rejectionOf } from './nest-test-kit';

const MAIN_GUILD = '81384788765712384';
const SUPPORT_GUILD = '1023234123812343808';

const harness = new NestHarness();

void afterEach(async () => {
  await harness.cleanup();
});

interface Seen {
  content: string;
  shardId: number;
}

/** The messages one bot's handler received. */
abstract class MessageLog {
  readonly seen: Seen[] = [];
  readonly seen$ = new Subject<Seen>();

  protected record(message: GatewayMessageCreateDispatchData, context: GatewayEventContext): void {
    const seen = { content: message.content, shardId: context.shardId };
    this.seen.push(seen);
    this.seen$.next(seen);
  }
}

/** The default bot's handler. */
@Injectable()
class MainBot extends MessageLog {
  @OnEvent('MESSAGE_CREATE')
  onMessage(message: GatewayMessageCreateDispatchData, context: GatewayEventContext): void {
    this.record(message, context);
  }
}

/** The support bot's handler, and the services of both bots. */
@Injectable()
class SupportBot extends MessageLog {
  constructor(
    @InjectShardService('support') readonly supportShards: ShardService,
    @InjectClusterService('support') readonly supportCluster: ClusterService,
    @InjectShardService() readonly mainShards: ShardService,
    @InjectClusterService() readonly mainCluster: ClusterService,
  ) {
    super();
  }

  @OnEvent('MESSAGE_CREATE', { gateway: 'support' })
  onMessage(message: GatewayMessageCreateDispatchData, context: GatewayEventContext): void {
    this.record(message, context);
  }
}

/** A handler bound to a gateway no app of these tests registers. */
@Injectable()
class HelpdeskBot {
  @OnEvent('MESSAGE_CREATE', { gateway: 'helpdesk' })
  onMessage(): void {}
}

@Controller()
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicator: GatewayHealthIndicator,
  ) {}

  @Get('health')
  check() {
    return this.health.check([() => this.indicator.isHealthy()]);
  }
}

@Module({
  imports: [GatewayHealthModule.forRoot({ gateways: ['default', 'support'] })],
  controllers: [HealthController],
})
class HealthFeatureModule {}

interface TwoBots {
  main: LocalGateway;
  support: LocalGateway;
  app: INestApplication;
  mainBot: MainBot;
  supportBot: SupportBot;
  registry: Registry;
}

/** Two local gateways with their own tokens, and one app running a bot on each. */
async function startTwoBots(): Promise<TwoBots> {
  const main = await harness.gateway({ token: 'main-bot-token', guilds: [MAIN_GUILD] });
  const support = await harness.gateway({ token: 'support-bot-token', guilds: [SUPPORT_GUILD] });
  const registry = new Registry();
  const app = await harness.app({
    imports: [
      GatewayModule.forRoot(moduleOptions(main)),
      GatewayModule.forRoot({ ...moduleOptions(support), name: 'support' }),
      GatewayMetricsModule.forRoot({ registry, gateways: ['default', 'support'] }),
      HealthFeatureModule,
    ],
    providers: [MainBot, SupportBot],
  });
  return { main, support, app, mainBot: app.get(MainBot), supportBot: app.get(SupportBot), registry };
}

function message(seed: number, guildId: string, content: string): GatewayMessageCreateDispatchData {
  return { ...createMessage(seed, { guildId }), content };
}

void describe('two bots in one app (named gateways)', () => {
  void it('connects each bot with its own token and routes each bot events to its own handlers only', async () => {
    const { main, support, mainBot, supportBot } = await startTwoBots();
    expect(main.framesOf(GatewayOpcodes.Identify).map((f) => f.d.token)).toEqual(['main-bot-token']);
    expect(support.framesOf(GatewayOpcodes.Identify).map((f) => f.d.token)).toEqual(['support-bot-token']);

    const mainSeen = waitFor(mainBot.seen$, () => true);
    main.dispatch(0, 'MESSAGE_CREATE', message(1, MAIN_GUILD, 'to main'));
    await mainSeen;
    const supportSeen = waitFor(supportBot.seen$, () => true);
    support.dispatch(0, 'MESSAGE_CREATE', message(2, SUPPORT_GUILD, 'to support'));
    await supportSeen;
    // A wrongly shared handler would have run in the same routing as the right one, before the awaits returned.
    expect(mainBot.seen.map((s) => s.content)).toEqual(['to main']);
    expect(supportBot.seen.map((s) => s.content)).toEqual(['to support']);
  });

  void it("sends each bot's commands on that bot's connection", async () => {
    const { main, support, supportBot } = await startTwoBots();
    expect(supportBot.supportShards).not.toBe(supportBot.mainShards);

    const supportFrame = support.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 15_000);
    await supportBot.supportShards.setPresence({ since: null, activities: [], status: PresenceUpdateStatus.Idle, afk: false });
    expect((await supportFrame).d.status).toBe('idle');
    const mainFrame = main.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 15_000);
    await supportBot.mainShards.setPresence({ since: null, activities: [], status: PresenceUpdateStatus.DoNotDisturb, afk: false });
    expect((await mainFrame).d.status).toBe('dnd');
    const members = await supportBot.supportShards.requestGuildMembers({ guildId: SUPPORT_GUILD, query: '', limit: 1 });
    expect(members.guildId).toBe(SUPPORT_GUILD);

    expect(main.framesOf(GatewayOpcodes.PresenceUpdate).map((f) => f.d.status)).toEqual(['dnd']);
    expect(support.framesOf(GatewayOpcodes.PresenceUpdate).map((f) => f.d.status)).toEqual(['idle']);
    expect(main.framesOf(GatewayOpcodes.RequestGuildMembers)).toEqual([]);
    expect(support.framesOf(GatewayOpcodes.RequestGuildMembers).map((f) => f.d.guild_id)).toEqual([SUPPORT_GUILD]);
  });

  void it("keeps the other bot running when one bot's shard closes fatally (4004), and labels health and metrics per bot", async () => {
    const { main, support, app, mainBot, supportBot, registry } = await startTwoBots();
    const metrics = await app.get(GatewayMetrics).metrics();
    expect(metrics).toContain('discord_gateway_shard_state{gateway="default",shard="0",state="ready"} 1');
    expect(metrics).toContain('discord_gateway_shard_state{gateway="support",shard="0",state="ready"} 1');
    const healthy = app.get(GatewayHealthIndicator).isHealthy();
    expect(Object.keys(healthy['discord-gateway'].shards as object).sort()).toEqual(['default/0', 'support/0']);
    expect(healthy['discord-gateway'].status).toBe('up');

    const fatal = waitFor(supportBot.supportCluster.errors$, (e) => /4004/.test(e.message));
    support.closeShard(0, 4004, 'Authentication failed.');
    await fatal;
    expect(supportBot.supportCluster.info()[0].state).toBe(ShardState.FatallyClosed);
    expect(supportBot.mainCluster.info()[0].state).toBe(ShardState.Ready);

    // The main bot still receives events and sends commands.
    const seen = waitFor(mainBot.seen$, () => true);
    main.dispatch(0, 'MESSAGE_CREATE', message(3, MAIN_GUILD, 'still here'));
    expect((await seen).content).toBe('still here');
    const frame = main.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 15_000);
    await supportBot.mainShards.setPresence({ since: null, activities: [], status: PresenceUpdateStatus.Online, afk: false });
    expect((await frame).d.status).toBe('online');

    const down = app.get(GatewayHealthIndicator).isHealthy();
    expect(down['discord-gateway'].status).toBe('down');
    expect(down['discord-gateway'].message).toBe('shard support/0 is fatally closed');
    const after = await registry.metrics();
    expect(after).toContain('discord_gateway_shard_state{gateway="support",shard="0",state="fatally-closed"} 1');
    expect(after).toContain('discord_gateway_shard_state{gateway="default",shard="0",state="ready"} 1');
  });

  void it('checks gateway names where they are given, and names a gateway the app lacks', async () => {
    const gateway = await harness.gateway();
    expect(() => GatewayModule.forRoot({ ...moduleOptions(gateway), name: 'not a name' })).toThrow(GatewayOptionsError);
    expect(() => OnEvent('READY', { gateway: '' })).toThrow(GatewayOptionsError);
    const mismatch = await rejectionOf(
      harness.create({ imports: [GatewayModule.forRootAsync({ name: 'support', useFactory: () => ({ ...moduleOptions(gateway), name: 'other' }) })] }),
    );
    expect(mismatch).toBeInstanceOf(GatewayOptionsError);
    expect((mismatch as Error).message).toContain('"name"');

    // A handler of a gateway the app lacks is reported once, with the handler's name.
    const logger = new CapturingLogger();
    await harness.app(
      { imports: [GatewayModule.forRoot(moduleOptions(gateway)), GatewayModule.forRoot({ ...moduleOptions(gateway), name: 'support' })], providers: [HelpdeskBot] },
      logger,
    );
    expect(logger.of('warn').map((l) => l.message)).toEqual([
      'HelpdeskBot.onMessage listens to gateway "helpdesk", which this app does not register: it will get no event',
    ]);

    // Health checks and metrics of a gateway the app does not have fail at init, naming it.
    for (const imports of [
      [GatewayModule.forRoot(moduleOptions(gateway)), GatewayHealthModule.forRoot({ gateways: ['default', 'helpdesk'] })],
      [GatewayModule.forRoot(moduleOptions(gateway)), GatewayMetricsModule.forRoot({ registry: new Registry(), gateways: ['helpdesk'] })],
    ]) {
      const app = await harness.create({ imports });
      const error = await rejectionOf(app.init());
      expect((error as Error).message).toMatch(/^Gateway(HealthIndicator|Metrics): the app has no gateway named "helpdesk"; import GatewayModule.forRoot\(\{ name: 'helpdesk', ... \}\)$/);
    }
  });
});

void describe('the testing kit with two bots', () => {
  void it('drives each bot through its own kit', async () => {
    const moduleRef = await harness.app({
      imports: [
        GatewayTestingModule.forRoot({ guilds: [MAIN_GUILD] }),
        GatewayTestingModule.forRoot({ name: 'support', guilds: [SUPPORT_GUILD] }),
      ],
      providers: [MainBot, SupportBot],
    });
    const mainKit = moduleRef.get(TestingGateway);
    const supportKit = moduleRef.get<TestingGateway>(getGatewayToken(TestingGateway, 'support'));
    expect(supportKit).not.toBe(mainKit);
    expect(supportKit.name).toBe('support');

    const toSupport = await supportKit.message('help!');
    expect(toSupport.handlers).toBe(1);
    const toMain = await mainKit.message('hello');
    expect(toMain.handlers).toBe(1);
    expect(moduleRef.get(SupportBot).seen.map((s) => s.content)).toEqual(['help!']);
    expect(moduleRef.get(MainBot).seen.map((s) => s.content)).toEqual(['hello']);

    await moduleRef.get(SupportBot).supportShards.setPresence({ since: null, activities: [], status: PresenceUpdateStatus.Idle, afk: false });
    expect((await supportKit.waitForPresenceUpdate()).status).toBe('idle');
    expect(mainKit.presenceUpdates()).toEqual([]);
  });
});
