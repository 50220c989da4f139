import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { inspect } from 'node:util';
import { Injectable, type LoggerService } from '@nestjs/common';
import { GatewayOpcodes } from 'discord-api-types/v10';
import {
  Cluster,
  ClusterService,
  GATEWAY_MODULE_OPTIONS,
  GatewayEventRouter,
  GatewayFatalError,
  GatewayModule,
  GatewayOptionsError,
  InMemoryIdentifyQueue,
  OnEvent,
  RestGatewayInfoSource,
  SessionStartLimitError,
  Shard,
  ShardService,
  ShardState,
  type ClusterOptions,
  type GatewayModuleOptions,
  type ShardOptions,
} from '../../lib/nest';
import { GatewayLifecycle } from '../../lib/nest/gateway.lifecycle';
import type { LocalGateway } from '../../lib/nest/testing';
import { SHORT_SHARD_TIMINGS, createShard, eventually, startGateway, waitForState } from '../helpers/gateway-test-kit';
import { MODULE_TEST_INTENTS, NestHarness, moduleOptions, rejectionOf, thrownBy } from '../module/nest-test-kit';

const SECRET = 'MTAwMDAwMDAwMDAwMDAwMDAy.GxS3cR.t0ken-That_Must-N3ver-Leak_4e9d';
const OTHER_SECRET = 'MTAwMDAwMDAwMDAwMDAwMDAz.WrOnG1.an0ther-Token_Refused-By_Server_77';

/** Fails when `text` holds either token, or a recognisable half of one. */
function expectNoToken(text: string, where: string): void {
  for (const token of [SECRET, OTHER_SECRET]) {
    for (const piece of [token, token.slice(0, token.length / 2), token.slice(token.length / 2)]) {
      if (text.includes(piece)) throw new Error(`${where} shows (part of) a token: ${text.slice(0, 300)}`);
    }
  }
}

/** Everything an error shows: message, stack, inspect output, JSON. */
function expectErrorClean(error: unknown, where: string): void {
  expect(error).toBeInstanceOf(Error);
  const e = error as Error;
  expectNoToken(e.message, `${where} message`);
  expectNoToken(e.stack ?? '', `${where} stack`);
  expectNoToken(inspect(e, { depth: 5 }), `${where} inspect`);
  expectNoToken(safeJson(e), `${where} JSON`);
}

/** JSON.stringify, or the message of what it threw (circular structures). */
function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch (error) {
    return `JSON.stringify threw: ${(error as Error).message}`;
  }
}

/** A LoggerService that keeps every argument of every call, errors with their stacks. */
class FullLogger implements LoggerService {
  readonly lines: string[] = [];
  log(...args: unknown[]): void {
    this.add('log', args);
  }
  error(...args: unknown[]): void {
    this.add('error', args);
  }
  warn(...args: unknown[]): void {
    this.add('warn', args);
  }
  debug(...args: unknown[]): void {
    this.add('debug', args);
  }
  verbose(...args: unknown[]): void {
    this.add('verbose', args);
  }
  fatal(...args: unknown[]): void {
    this.add('fatal', args);
  }
  text(): string {
    return this.lines.join('\n');
  }
  private add(level: string, args: unknown[]): void {
    const parts = args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? `${a.message}\n${a.stack}` : inspect(a, { depth: 5 })));
    this.lines.push(`${level} ${parts.join(' | ')}`);
  }
}

@Injectable()
class FailingHandlers {
  @OnEvent('MESSAGE_CREATE')
  onMessage(message: { content: string }): void | Promise<void> {
    if (message.content === 'throw') throw new Error('the handler threw');
    if (message.content === 'reject') return Promise.reject(new Error('the handler rejected'));
  }
}

const harness = new NestHarness();
let gateway: LocalGateway | undefined;
let shard: Shard | undefined;

void afterEach(async () => {
  await shard?.close();
  await gateway?.close();
  shard = gateway = undefined;
  await harness.cleanup();
});

void describe('the token never shows', () => {
  void it('in Nest logs and Cluster debug$ over a lifecycle with handler errors, reconnects, a fatal 4004 and shutdown', { timeout: 30_000 }, async () => {
    const local = await harness.gateway({ token: SECRET, shards: 2 });
    const logger = new FullLogger();
    const app = await harness.create(
      { imports: [GatewayModule.forRoot(moduleOptions(local))], providers: [FailingHandlers] },
      logger,
    );
    const cluster = app.get(Cluster);
    const debug: string[] = [];
    const errors: Error[] = [];
    cluster.debug$.subscribe(({ message }) => debug.push(message));
    cluster.error$.subscribe((error) => errors.push(error));
    await app.init();
    const service = app.get(ClusterService);

    local.dispatch(0, 'MESSAGE_CREATE', { content: 'throw' });
    local.dispatch(1, 'MESSAGE_CREATE', { content: 'reject' });
    await eventually(() => logger.lines.filter((l) => l.includes('Handler FailingHandlers.onMessage failed')).length === 2, 15_000, 'two handler errors');
    for (const fault of [
      () => local.reconnect(0),
      () => local.invalidateSession(1, false),
      () => local.closeShard(0, 4000),
      () => local.sendCorruptZlib(1),
      () => local.sendInvalidJson(0),
    ]) {
      const identifiesAndResumes = local.framesOf(GatewayOpcodes.Identify).length + local.framesOf(GatewayOpcodes.Resume).length;
      fault();
      await eventually(
        () =>
          local.framesOf(GatewayOpcodes.Identify).length + local.framesOf(GatewayOpcodes.Resume).length > identifiesAndResumes &&
          service.allReady,
        3_000,
        'ready again',
      );
    }
    local.closeShard(1, 4004, 'Authentication failed.');
    await eventually(() => app.get(ShardService).info(1)?.state === ShardState.FatallyClosed, 15_000, 'the fatal close');
    await harness.closeApp(app);

    // The lifecycle did happen, and was logged.
    const logs = logger.text();
    expect(logs).toContain('the handler threw');
    expect(logs).toContain('the handler rejected');
    expect(logs).toMatch(/closed for good \(4004\)/);
    expect(logs).toContain('not valid JSON');
    expect(debug.some((m) => m.startsWith('identifying'))).toBe(true);
    expect(debug.some((m) => m.startsWith('resuming'))).toBe(true);
    expect(errors.some((e) => e instanceof GatewayFatalError)).toBe(true);

    expectNoToken(logs, 'Nest logs');
    expectNoToken(debug.join('\n'), 'Cluster debug$');
    for (const error of errors) expectErrorClean(error, `Cluster error$ ${error.name}`);
  });

  void it('in Shard debug$ and error$, and in its GatewayFatalError', { timeout: 20_000 }, async () => {
    gateway = await startGateway({ token: SECRET });
    shard = createShard(gateway, { token: SECRET, identifyQueue: new InMemoryIdentifyQueue({ windowMs: 50 }) });
    const debug: string[] = [];
    const errors: Error[] = [];
    shard.debug$.subscribe((m) => debug.push(m));
    shard.error$.subscribe((e) => errors.push(e));
    await shard.connect();
    for (const fault of [() => gateway!.reconnect(0), () => gateway!.invalidateSession(0, false), () => gateway!.sendInvalidJson(0)]) {
      const ready = gateway.waitForReady(0, 15_000);
      fault();
      await ready;
      await waitForState(shard, ShardState.Ready, 15_000);
    }
    const fatal = waitForState(shard, ShardState.FatallyClosed, 15_000);
    gateway.closeShard(0, 4004, 'Authentication failed.');
    await fatal;
    expect(shard.fatalError).toBeInstanceOf(GatewayFatalError);
    expect(shard.fatalError!.code).toBe(4004);
    expect(debug.some((m) => m.startsWith('identifying')) && debug.some((m) => m.startsWith('resuming'))).toBe(true);
    expectNoToken(debug.join('\n'), 'Shard debug$');
    for (const error of errors) expectErrorClean(error, `Shard error$ ${error.name}`);
    expectErrorClean(shard.fatalError, 'GatewayFatalError');
    expectErrorClean(await rejectionOf(shard.connect()), 'connect() after the fatal close');
  });

  void it('when startup fails: a refused token (4004 at IDENTIFY) and a REST 401, in errors and logs', { timeout: 20_000 }, async () => {
    const local = await harness.gateway({ token: SECRET });
    // The gateway URL and queue are given, so the shard goes straight to IDENTIFY with a token the gateway refuses.
    const logger = new FullLogger();
    const refused = await harness.create(
      {
        imports: [
          GatewayModule.forRoot(
            moduleOptions(local, {
              token: OTHER_SECRET,
              gatewayUrl: local.url,
              shards: { total: 1, ids: [0] },
              identifyQueue: new InMemoryIdentifyQueue({ windowMs: 100 }),
            }),
          ),
        ],
        providers: [FailingHandlers],
      },
      logger,
    );
    const fatal = await rejectionOf(refused.init());
    expect(fatal).toBeInstanceOf(GatewayFatalError);
    expect((fatal as GatewayFatalError).code).toBe(4004);
    expectErrorClean(fatal, 'GatewayFatalError at startup');

    // GET /gateway/bot answers 401 to a token it does not know.
    const restLogger = new FullLogger();
    const rest = await harness.create(
      { imports: [GatewayModule.forRoot(moduleOptions(local, { token: OTHER_SECRET }))], providers: [FailingHandlers] },
      restLogger,
    );
    const unauthorized = await rejectionOf(rest.init());
    expect((unauthorized as Error).message).toMatch(/401/);
    expectErrorClean(unauthorized, 'REST 401 at startup');
    const direct = await rejectionOf(new RestGatewayInfoSource({ token: OTHER_SECRET, apiUrl: local.apiUrl }).fetch());
    expect((direct as Error).message).toMatch(/answered 401 \(the token was refused\)/);
    expectErrorClean(direct, 'RestGatewayInfoSource 401');

    expectNoToken(logger.text(), 'Nest logs of the refused start');
    expectNoToken(restLogger.text(), 'Nest logs of the 401 start');
  });

  void it('in the GatewayOptionsError of every option, even when the token is given as the bad value', async () => {
    const base: ShardOptions = { id: 0, total: 1, token: SECRET, intents: 1, gatewayUrl: 'ws://127.0.0.1:1' };
    const shardCases: [string, Partial<ShardOptions> | Record<string, unknown>][] = [
      ['token', { token: '   ' }],
      ['token', { token: [SECRET] }],
      ['total', { total: SECRET }],
      ['id', { id: SECRET }],
      ['id', { id: 3 }],
      ['intents', { intents: SECRET }],
      ['largeThreshold', { largeThreshold: SECRET }],
      ['allowInsecureGateway', { allowInsecureGateway: SECRET }],
      ['gatewayUrl', { gatewayUrl: SECRET }],
      ['gatewayUrl', { gatewayUrl: `https://${SECRET}.example.com` }],
      ['compression', { compression: SECRET }],
      ['backoff.baseMs', { backoff: { baseMs: SECRET } }],
      ['backoff.maxMs', { backoff: { maxMs: SECRET } }],
      ['invalidSessionDelay.minMs', { invalidSessionDelay: { minMs: SECRET } }],
      ['invalidSessionDelay.maxMs', { invalidSessionDelay: { maxMs: SECRET } }],
      ['invalidSessionDelay.maxMs', { invalidSessionDelay: { minMs: 10, maxMs: 5 } }],
      ['commandRateLimit.limit', { commandRateLimit: { limit: SECRET } }],
      ['commandRateLimit.windowMs', { commandRateLimit: { windowMs: SECRET } }],
      ['session.sessionId', { session: { sessionId: 42, resumeUrl: 'wss://x', sequence: 1 } }],
      ['session.resumeUrl', { session: { sessionId: 'abc', resumeUrl: 42, sequence: 1 } }],
      ['session.sequence', { session: { sessionId: 'abc', resumeUrl: 'wss://x', sequence: SECRET } }],
      ['handshakeTimeout', { handshakeTimeout: SECRET }],
      ['helloTimeout', { helloTimeout: SECRET }],
      ['readyTimeout', { readyTimeout: SECRET }],
      ['closeTimeout', { closeTimeout: SECRET }],
      ['maxMessageBytes', { maxMessageBytes: SECRET }],
    ];
    for (const [option, patch] of shardCases) {
      let caught: unknown;
      try {
        new Shard({ ...base, ...patch } as ShardOptions);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(GatewayOptionsError);
      expect({ option, got: (caught as GatewayOptionsError).option }).toEqual({ option, got: option });
      expect((caught as Error).message).toContain(`"${option}"`);
      expectErrorClean(caught, `GatewayOptionsError for ${option}`);
    }

    const clusterBase: ClusterOptions = { token: SECRET, intents: 1, apiUrl: 'http://127.0.0.1:1/api' };
    const clusterCases: [string, Record<string, unknown>][] = [
      ['shards', { shards: SECRET }],
      ['shards.ids', { shards: { total: 2, ids: [SECRET] } }],
      ['identifyWindowMs', { identifyWindowMs: SECRET }],
      ['sessionSaveIntervalMs', { sessionSaveIntervalMs: SECRET }],
      ['guildReadyTimeout', { guildReadyTimeout: SECRET }],
      ['apiUrl', { apiUrl: SECRET }],
      ['apiUrl', { apiUrl: `ftp://${SECRET}` }],
    ];
    for (const [option, patch] of clusterCases) {
      let caught: unknown;
      try {
        new Cluster({ ...clusterBase, ...patch } as ClusterOptions);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(GatewayOptionsError);
      expect((caught as GatewayOptionsError).option.startsWith(option)).toBe(true);
      expectErrorClean(caught, `GatewayOptionsError for ${option}`);
    }

    // Module-level options fail while the app is created, naming the option.
    const local = await harness.gateway({ token: SECRET });
    const moduleCases: [string, Record<string, unknown>][] = [
      ['autoConnect', { autoConnect: SECRET }],
      ['awaitReady', { awaitReady: SECRET }],
      ['shutdown', { shutdown: SECRET }],
      ['maxPendingHandlersPerShard', { maxPendingHandlersPerShard: SECRET }],
      ['memberRequestCooldownMs', { memberRequestCooldownMs: SECRET }],
    ];
    for (const [option, patch] of moduleCases) {
      const logger = new FullLogger();
      // forRoot checks the options itself, so the error reaches its caller before any app exists.
      const error = thrownBy(() => GatewayModule.forRoot(moduleOptions(local, patch as Partial<GatewayModuleOptions>)));
      expect(error).toBeInstanceOf(GatewayOptionsError);
      expect((error as GatewayOptionsError).option).toBe(option);
      expectErrorClean(error, `GatewayOptionsError for ${option}`);
      expectNoToken(logger.text(), `Nest logs of the bad ${option}`);
    }
    expect(local.connections).toHaveLength(0);
  });

  void it('in the SessionStartLimitError', async () => {
    const local = await harness.gateway({ token: SECRET, sessionStartLimit: { remaining: 0 } });
    const cluster = new Cluster({ token: SECRET, intents: 1, apiUrl: local.apiUrl, shards: { total: 2, ids: [0, 1] } });
    const error = await rejectionOf(cluster.up());
    expect(error).toBeInstanceOf(SessionStartLimitError);
    expectErrorClean(error, 'SessionStartLimitError');
    expect(local.connections).toHaveLength(0);
  });

  void it('in util.inspect and JSON.stringify of Shard, Cluster, the services, RestGatewayInfoSource and the module options', { timeout: 20_000 }, async () => {
    const local = await harness.gateway({ token: SECRET, shards: 2 });
    const app = await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(local))], providers: [FailingHandlers] });
    const cluster = app.get(Cluster);
    const options = app.get<GatewayModuleOptions>(GATEWAY_MODULE_OPTIONS);
    const subjects: [string, unknown][] = [
      ['Shard', cluster.shards.get(0)],
      ['Cluster', cluster],
      ['ShardService', app.get(ShardService)],
      ['ClusterService', app.get(ClusterService)],
      ['RestGatewayInfoSource', new RestGatewayInfoSource({ token: SECRET, apiUrl: local.apiUrl })],
      ['GATEWAY_MODULE_OPTIONS', options],
      ['GatewayLifecycle', app.get(GatewayLifecycle)],
      ['GatewayEventRouter', app.get(GatewayEventRouter)],
      ['ShardService.info()', app.get(ShardService).info()],
    ];
    for (const [name, subject] of subjects) {
      expect(subject).toBeDefined();
      expectNoToken(inspect(subject), `util.inspect(${name})`);
      expectNoToken(inspect(subject, { depth: 8 }), `util.inspect(${name}, depth 8)`);
      expectNoToken(`${inspect({ wrapped: subject }, { depth: 8 })}`, `a log of an object holding ${name}`);
      expectNoToken(safeJson(subject), `JSON.stringify(${name})`);
      expectNoToken(safeJson({ ...(subject as object) }), `JSON.stringify of a spread of ${name}`);
    }
    // Every inspection option that reveals more: hidden properties, getters, proxies, any depth.
    for (const [name, subject] of [...subjects, ['the options of Cluster', (cluster as unknown as { options: unknown }).options]] as [string, unknown][]) {
      for (const how of [
        { showHidden: true, depth: Infinity },
        { showHidden: true, depth: Infinity, getters: true },
        { showHidden: true, depth: Infinity, showProxy: true },
        { showHidden: true, depth: Infinity, customInspect: false },
      ]) {
        expectNoToken(inspect(subject, how), `util.inspect(${name}, ${JSON.stringify(how)})`);
        expectNoToken(inspect({ wrapped: subject }, how), `util.inspect of an object holding ${name}, ${JSON.stringify(how)}`);
      }
    }
    // The options still work: the token is there for the module to read, just not shown.
    expect(options.token).toBe(SECRET);
    expect(app.get(ClusterService).allReady).toBe(true);
    expect(local.framesOf(GatewayOpcodes.Identify).map((f) => f.d.token)).toEqual([SECRET, SECRET]);
  });
});

void describe('the server close reason', () => {
  for (const strategy of [{ type: 'in-process' }, { type: 'workers', shardsPerWorker: 1 }] as const) {
    void it(`is redacted like debug lines in info().lastClose and info().lastError (${strategy.type})`, { timeout: 30_000 }, async () => {
      const local = await harness.gateway({ token: SECRET });
      const cluster = new Cluster({
        token: SECRET,
        intents: 1,
        apiUrl: local.apiUrl,
        identifyWindowMs: 100,
        ...SHORT_SHARD_TIMINGS,
        random: () => 0.5,
        strategy,
      });
      const debug: string[] = [];
      cluster.debug$.subscribe(({ message }) => debug.push(message));
      try {
        await cluster.up();
        const identifies = local.framesOf(GatewayOpcodes.Identify).length + local.framesOf(GatewayOpcodes.Resume).length;
        // A close code that resumes, with a reason quoting the token.
        local.closeShard(0, 4000, `unknown error for ${SECRET}`);
        await eventually(
          () => local.framesOf(GatewayOpcodes.Identify).length + local.framesOf(GatewayOpcodes.Resume).length > identifies,
          5_000,
          'the new handshake',
        );
        await cluster.ready();
        await eventually(() => debug.some((m) => m.includes('connection closed with 4000')), 15_000, 'the close in debug$');
        const infos = await cluster.collectInfo();
        const lastClose = infos[0].lastClose;
        expect(lastClose).toEqual({ code: 4000, reason: 'unknown error for [token]' });
        expectNoToken(JSON.stringify(infos), 'Cluster info()');
        // In worker mode the shard handle's own info comes from the worker, redacted there.
        if (strategy.type === 'workers') expectNoToken(JSON.stringify(cluster.shards.get(0)!.info()), 'the worker shard info()');
        expectNoToken(debug.join('\n'), 'Cluster debug$');
      } finally {
        await cluster.down();
      }
    });
  }
});

void describe('transport security', () => {
  const insecureGateway = 'ws://gateway.example.com';
  const insecureApi = 'http://api.example.com';

  void it('refuses ws:// and http:// URLs off loopback with an error naming the option, unless allowInsecureGateway', async () => {
    const shardOptions: ShardOptions = { id: 0, total: 1, token: SECRET, intents: 1 };
    const refusals: [string, () => unknown][] = [
      ['gatewayUrl', () => new Shard({ ...shardOptions, gatewayUrl: insecureGateway })],
      ['gatewayUrl', () => new Cluster({ token: SECRET, intents: 1, gatewayUrl: insecureGateway })],
      ['apiUrl', () => new Cluster({ token: SECRET, intents: 1, apiUrl: insecureApi })],
      ['apiUrl', () => new RestGatewayInfoSource({ token: SECRET, apiUrl: insecureApi })],
    ];
    for (const [option, create] of refusals) {
      let caught: unknown;
      try {
        create();
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(GatewayOptionsError);
      expect((caught as GatewayOptionsError).option).toBe(option);
      expect((caught as Error).message).toContain(`"${option}"`);
      expect((caught as Error).message).toMatch(/unencrypted/);
      expectErrorClean(caught, `the refusal of ${option}`);
    }
    // Allowed explicitly: construction succeeds (nothing is connected to those hosts).
    expect(new Shard({ ...shardOptions, gatewayUrl: insecureGateway, allowInsecureGateway: true }).state).toBe(ShardState.Disconnected);
    expect(new Cluster({ token: SECRET, intents: 1, gatewayUrl: insecureGateway, apiUrl: insecureApi, allowInsecureGateway: true }).total).toBe(0);
    expect(new RestGatewayInfoSource({ token: SECRET, apiUrl: insecureApi, allowInsecure: true })).toBeInstanceOf(RestGatewayInfoSource);
    // Loopback needs no permission; TLS never does.
    for (const url of ['ws://127.0.0.1:1', 'ws://127.8.9.10:1', 'ws://localhost:1', 'ws://[::1]:1', 'wss://gateway.example.com']) {
      expect(new Shard({ ...shardOptions, gatewayUrl: url }).state).toBe(ShardState.Disconnected);
    }
    expect(new Cluster({ token: SECRET, intents: 1, apiUrl: 'http://127.0.0.1:1/api' }).total).toBe(0);

    // The same through the module: refused at startup, or created (and left unconnected) when allowed.
    const logger = new FullLogger();
    const refused = thrownBy(() =>
      GatewayModule.forRoot({ token: SECRET, intents: MODULE_TEST_INTENTS, gatewayUrl: insecureGateway, autoConnect: false }),
    );
    expectErrorClean(refused, 'GatewayOptionsError for gatewayUrl');
    expect((refused as GatewayOptionsError).option).toBe('gatewayUrl');
    const allowed = await harness.app({
      imports: [
        GatewayModule.forRoot({ token: SECRET, intents: MODULE_TEST_INTENTS, gatewayUrl: insecureGateway, apiUrl: insecureApi, allowInsecureGateway: true, autoConnect: false }),
      ],
    });
    expect(allowed.get(ClusterService).total).toBe(0);
    expectNoToken(logger.text(), 'Nest logs of the refused module');
  });

  void it('does not follow an insecure resume_gateway_url off loopback: resumes on the gateway URL instead', { timeout: 20_000 }, async () => {
    gateway = await startGateway({ token: SECRET, resumeUrl: 'ws://resume.example.com' });
    shard = createShard(gateway, { token: SECRET });
    const debug: string[] = [];
    shard.debug$.subscribe((m) => debug.push(m));
    await shard.connect();
    expect(shard.session?.resumeUrl).toBe('ws://resume.example.com');
    const sessionId = gateway.sessionOf(0);

    const missed = gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'before the reconnect' });
    const resumed = gateway.waitForReady(0, 15_000);
    gateway.reconnect(0);
    expect(await resumed).toBe(sessionId);
    await eventually(() => shard!.state === ShardState.Ready && shard!.info().sequence === missed + 1, 15_000, 'RESUMED');

    expect(debug).toContain('the resume URL is not a secure WebSocket URL: using the gateway URL');
    const connecting = debug.filter((m) => m.startsWith('connecting to'));
    expect(connecting).toHaveLength(2);
    for (const line of connecting) expect(line).toMatch(/^connecting to ws:\/\/127\.0\.0\.1:\d+\/\?/);
    expect(debug.some((m) => m.includes('resume.example.com'))).toBe(false);
    // The session was resumed, on the gateway's own path.
    expect(gateway.connections).toHaveLength(2);
    expect(gateway.connections[1].path).toBe('/');
    expect(gateway.framesOf(GatewayOpcodes.Resume)).toHaveLength(1);
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);
  });
});
