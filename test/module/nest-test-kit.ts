import 'reflect-metadata';
import type { INestApplication, LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { GatewayIntentBits } from 'discord-api-types/v10';
import { ClusterService, GatewayModule, ShardService, type GatewayModuleOptions } from '../../lib/nest';
import { findGateway, type GatewayPartsResolver } from '../../lib/nest/gateway-lookup';
import type { LocalGateway, LocalGatewayOptions } from '../../lib/nest/testing';
import { SHORT_SHARD_TIMINGS, startGateway } from '../helpers/gateway-test-kit';

/** Intents the Nest-layer tests identify with. */
export const MODULE_TEST_INTENTS =
  GatewayIntentBits.Guilds | GatewayIntentBits.GuildMembers | GatewayIntentBits.GuildVoiceStates | GatewayIntentBits.GuildMessages;

/** Shard timings as short as the protocol tests use, so that no test waits for real-world values. */
export const SHORT_TIMINGS: Partial<GatewayModuleOptions> = {
  identifyWindowMs: 100,
  ...SHORT_SHARD_TIMINGS,
  random: () => 0.5,
};

/** GatewayModule options pointed at `gateway` (token, REST API) with short timings. */
export function moduleOptions(gateway: LocalGateway, extra: Partial<GatewayModuleOptions> = {}): GatewayModuleOptions {
  return { token: gateway.token, intents: MODULE_TEST_INTENTS, apiUrl: gateway.apiUrl, ...SHORT_TIMINGS, ...extra };
}

/** One logged line. */
export interface LogLine {
  level: 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';
  message: string;
  context?: string;
}

/** A LoggerService that keeps every line in memory (and prints nothing). */
export class CapturingLogger implements LoggerService {
  readonly lines: LogLine[] = [];

  log(message: unknown, ...rest: unknown[]): void {
    this.add('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.add('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.add('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.add('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.add('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.add('fatal', message, rest);
  }

  /** Lines of one level. */
  of(level: LogLine['level']): LogLine[] {
    return this.lines.filter((line) => line.level === level);
  }

  private add(level: LogLine['level'], message: unknown, rest: unknown[]): void {
    const last = rest.length > 0 ? rest[rest.length - 1] : undefined;
    const text = message instanceof Error ? `${message.name}: ${message.message}` : String(message);
    this.lines.push({ level, message: text, context: typeof last === 'string' ? last : undefined });
  }
}

/**
 * Gateways and apps a test started, closed in reverse order by `cleanup()` (apps first, then gateways), even
 * when a test fails half-way.
 */
export class NestHarness {
  private readonly apps: INestApplication[] = [];
  private readonly gateways: LocalGateway[] = [];

  /** Starts a local gateway (see `startGateway`) with the given options. */
  async gateway(options: LocalGatewayOptions = {}): Promise<LocalGateway> {
    const gateway = await startGateway(options);
    this.gateways.push(gateway);
    return gateway;
  }

  /** Compiles a testing module from `metadata`, creates the Nest application and initialises it. */
  async app(metadata: ModuleMetadata, logger?: LoggerService): Promise<INestApplication> {
    const app = await this.create(metadata, logger);
    await app.init();
    return app;
  }

  /** Compiles a testing module and creates the application, without initialising it. */
  async create(metadata: ModuleMetadata, logger?: LoggerService): Promise<INestApplication> {
    const builder = Test.createTestingModule(metadata);
    if (logger) builder.setLogger(logger);
    const moduleRef = await builder.compile();
    const app = moduleRef.createNestApplication(logger ? { logger } : undefined);
    if (logger) app.useLogger(logger);
    this.apps.push(app);
    return app;
  }

  /** Closes one app now (and forgets it). */
  async closeApp(app: INestApplication): Promise<void> {
    const index = this.apps.indexOf(app);
    if (index >= 0) this.apps.splice(index, 1);
    await app.close();
  }

  /** Closes every app, then every gateway. */
  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const app of this.apps.splice(0).reverse()) await app.close().catch((error) => errors.push(error));
    for (const gateway of this.gateways.splice(0).reverse()) await gateway.close().catch((error) => errors.push(error));
    if (errors.length > 0) throw errors[0];
  }
}

/** Resolves with what `promise` rejected with, or rejects if it resolved. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('Expected a rejection, but the promise resolved');
}

/** Guilds owned by shard 0 and shard 1 of a two-shard bot: `(id >> 22) % 2`. */
export const GUILD_ON_SHARD_0 = '81384788765712384';
export const GUILD_ON_SHARD_1 = '1023234123812343808';
/** A channel id for voice commands. */
export const VOICE_CHANNEL = '155101607195836416';

/** A local gateway and a ready app connected to it, with the app's services. */
export interface RunningApp {
  gateway: LocalGateway;
  app: INestApplication;
  shards: ShardService;
  cluster: ClusterService;
}

/** A two-shard gateway with both guilds, and a ready app (with `providers`) connected to it. */
export async function startTwoShardApp(
  harness: NestHarness,
  gatewayOptions: LocalGatewayOptions = {},
  options: Partial<GatewayModuleOptions> = {},
  providers: NonNullable<ModuleMetadata['providers']> = [],
): Promise<RunningApp> {
  const gateway = await harness.gateway({ shards: 2, guilds: [GUILD_ON_SHARD_0, GUILD_ON_SHARD_1], ...gatewayOptions });
  const app = await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, options))], providers });
  return { gateway, app, shards: app.get(ShardService), cluster: app.get(ClusterService) };
}

/** What `call` throws synchronously, or a thrown error if it returns. */
export function thrownBy(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error;
  }
  throw new Error('expected a synchronous throw, but the call returned');
}

/**
 * Resolves once every handler promise of the app's gateway has settled: what the events routed so far caused
 * (results, rejections, interceptor and filter work) has happened.
 */
export function handlersSettled(app: GatewayPartsResolver, name?: string): Promise<void> {
  return findGateway(app, name, 'handlersSettled').router.idle();
}
