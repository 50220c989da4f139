import 'reflect-metadata';
import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { get } from 'node:http';
import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ActivityType, PresenceUpdateStatus } from 'discord-api-types/v10';
import { register as defaultRegistry, Registry } from 'prom-client';
import { OnEvent, ShardService, type GatewayEventContext, type GatewayEventData, type ShardingStrategy } from '../../lib/nest';
import { GatewayMetrics, GatewayMetricsModule } from '../../lib/metrics';
import { createTestingGateway, createTypingStart, type TestingGateway } from '../../lib/nest/testing';
import { ObservabilityModule } from '../../sample/observability.module';

/** Guilds on shard 0 and shard 1 of a two-shard bot: `(id >> 22) % 2`. */
const GUILD_0 = '81384788765712384';
const GUILD_1 = '1023234123812343808';

@Injectable()
class MetricsTestHandler {
  constructor(private readonly shards: ShardService) {}

  @OnEvent('MESSAGE_CREATE')
  async onMessage(message: GatewayEventData<'MESSAGE_CREATE'>, context: GatewayEventContext): Promise<void> {
    if (message.content === '!fail') throw new Error('this command fails');
    if (message.content === '!presence') {
      await this.shards.setPresence({ since: null, afk: false, status: PresenceUpdateStatus.Idle, activities: [{ name: 'metrics', type: ActivityType.Watching }] }, context.shardId);
    }
  }
}

@Module({ providers: [MetricsTestHandler] })
class MetricsTestBotModule {}

interface Reply {
  status: number;
  contentType: string;
  text: string;
}

/** One GET on a fresh connection (no keep-alive, so the server closes at once). */
function httpGet(url: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, contentType: String(response.headers['content-type']), text }));
    });
    request.on('error', reject);
    request.setTimeout(5_000, () => request.destroy(new Error(`GET ${url} timed out`)));
  });
}

/** The value of the sample `name{labels}` in Prometheus text, whatever the label order; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[pair[1]] = pair[2];
    const wanted = Object.entries(labels);
    if (wanted.length === Object.keys(found).length && wanted.every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

let kit: TestingGateway | null = null;
let app: INestApplication | null = null;

void afterEach(async () => {
  await app?.close();
  await kit?.close();
  app = null;
  kit = null;
});

/** A two-shard bot with the handler above and GET /metrics, listening on a free port of 127.0.0.1. */
async function start(strategy: ShardingStrategy): Promise<{ url: string; kit: TestingGateway }> {
  kit = await createTestingGateway({ shards: 2, guilds: [GUILD_0, GUILD_1] });
  const root = { module: class MetricsTestModule {}, imports: [kit.module({ strategy }), ObservabilityModule.register(), MetricsTestBotModule] };
  app = await NestFactory.create(root, { logger: false, abortOnError: false });
  await app.listen(0, '127.0.0.1');
  kit.attach(app);
  return { url: `${await app.getUrl()}/metrics`, kit };
}

/** Shards in this thread, and in worker threads (whose figures cross from the workers). */
const STRATEGIES: [string, ShardingStrategy][] = [
  ['in-process shards', { type: 'in-process' }],
  ['worker-thread shards', { type: 'workers' }],
];

for (const [name, strategy] of STRATEGIES) {
  void describe(`GET /metrics with GatewayMetrics, ${name}`, () => {
    void it('counts received events per shard and event name, handler runs, errors and commands', async () => {
      const { url, kit: running } = await start(strategy);
      await running.message('hello', { guildId: GUILD_0 });
      await running.message('!fail', { guildId: GUILD_0 });
      await running.message('!presence', { guildId: GUILD_0 });
      await running.message('hello', { guildId: GUILD_1 });
      // No handler wants TYPING_START: the shard skips it undecoded, and still counts it.
      await running.emit('TYPING_START', createTypingStart(1, GUILD_1));
      await running.emit('TYPING_START', createTypingStart(2, GUILD_1));

      const reply = await httpGet(url);
      expect(reply.status).toBe(200);
      expect(reply.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
      const text = reply.text;
      expect(text).toContain('# TYPE discord_gateway_events_received_total counter');
      expect(sample(text, 'discord_gateway_events_received_total', { shard: '0', event: 'MESSAGE_CREATE' })).toBe(3);
      expect(sample(text, 'discord_gateway_events_received_total', { shard: '1', event: 'MESSAGE_CREATE' })).toBe(1);
      expect(sample(text, 'discord_gateway_events_received_total', { shard: '1', event: 'TYPING_START' })).toBe(2);
      expect(sample(text, 'discord_gateway_events_received_total', { shard: '0', event: 'TYPING_START' })).toBeUndefined();
      expect(sample(text, 'discord_gateway_events_received_total', { shard: '0', event: 'READY' })).toBe(1);
      expect(sample(text, 'discord_gateway_events_received_total', { shard: '1', event: 'GUILD_CREATE' })).toBe(1);

      const handler = { event: 'MESSAGE_CREATE', handler: 'MetricsTestHandler.onMessage' };
      expect(sample(text, 'discord_gateway_handler_duration_seconds_count', handler)).toBe(4);
      expect(sample(text, 'discord_gateway_handler_errors_total', handler)).toBe(1);
      expect(sample(text, 'discord_gateway_commands_sent_total', { shard: '0' })).toBe(1);
      expect(sample(text, 'discord_gateway_commands_sent_total', { shard: '1' })).toBe(0);
      expect(sample(text, 'discord_gateway_command_queue_length', { shard: '0' })).toBe(0);
      expect(sample(text, 'discord_gateway_handshakes_total', { shard: '0', type: 'identify' })).toBe(1);
      expect(sample(text, 'discord_gateway_handshakes_total', { shard: '0', type: 'resume' })).toBe(0);
      expect(sample(text, 'discord_gateway_shard_state', { shard: '1', state: 'ready' })).toBe(1);
      expect(sample(text, 'discord_gateway_shard_state', { shard: '1', state: 'connecting' })).toBe(0);
      expect(sample(text, 'discord_gateway_payload_bytes_total', { shard: '0' })).toBeGreaterThan(0);
      // zlib-stream: fewer bytes on the socket than after inflating.
      expect(sample(text, 'discord_gateway_received_bytes_total', { shard: '0' })).toBeLessThan(
        sample(text, 'discord_gateway_payload_bytes_total', { shard: '0' })!,
      );
    });

    void it('counts a reconnect after op 7, by reason, and the RESUME that followed it', async () => {
      const { url, kit: running } = await start(strategy);
      const before = await httpGet(url);
      expect(sample(before.text, 'discord_gateway_reconnects_total', { shard: '0', reason: 'reconnect-request' })).toBeUndefined();

      const resumed = running.gateway.waitForReady(0);
      running.gateway.reconnect(0);
      await resumed;
      await running.message('after the reconnect', { guildId: GUILD_0 });

      const text = (await httpGet(url)).text;
      expect(sample(text, 'discord_gateway_reconnects_total', { shard: '0', reason: 'reconnect-request' })).toBe(1);
      expect(sample(text, 'discord_gateway_reconnects_total', { shard: '1', reason: 'reconnect-request' })).toBeUndefined();
      expect(sample(text, 'discord_gateway_handshakes_total', { shard: '0', type: 'resume' })).toBe(1);
      expect(sample(text, 'discord_gateway_handshakes_total', { shard: '0', type: 'identify' })).toBe(1);
      expect(sample(text, 'discord_gateway_handshakes_total', { shard: '1', type: 'resume' })).toBe(0);
      expect(sample(text, 'discord_gateway_events_received_total', { shard: '0', event: 'RESUMED' })).toBe(1);
    });
  });
}

void describe('GatewayMetrics registries', () => {
  void it('registers in the default registry unless given one, and leaves it clean at shutdown so a second app can register', async () => {
    for (let round = 0; round < 2; round++) {
      kit = await createTestingGateway();
      const root = { module: class DefaultRegistryModule {}, imports: [kit.module(), GatewayMetricsModule.forRoot()] };
      app = await NestFactory.create(root, { logger: false, abortOnError: false });
      await app.init();
      expect(app.get(GatewayMetrics).registry).toBe(defaultRegistry);
      const text = await defaultRegistry.metrics();
      expect(sample(text, 'discord_gateway_events_received_total', { shard: '0', event: 'READY' })).toBe(1);
      await app.close();
      await kit.close();
      app = null;
      kit = null;
      expect(defaultRegistry.getSingleMetric('discord_gateway_events_received_total')).toBeUndefined();
    }
  });

  void it('uses a given registry and prefix', async () => {
    const registry = new Registry();
    kit = await createTestingGateway();
    const root = { module: class PrefixModule {}, imports: [kit.module(), GatewayMetricsModule.forRoot({ registry, prefix: 'bot_' })] };
    app = await NestFactory.create(root, { logger: false, abortOnError: false });
    await app.init();
    const text = await registry.metrics();
    expect(sample(text, 'bot_events_received_total', { shard: '0', event: 'READY' })).toBe(1);
    expect(text).not.toContain('discord_gateway_');
  });

  void it('takes its options from forRootAsync: a registry another module provides, through useFactory and inject', async () => {
    const registry = new Registry();
    const REGISTRY = Symbol('REGISTRY');
    @Module({ providers: [{ provide: REGISTRY, useValue: registry }], exports: [REGISTRY] })
    class RegistryModule {}
    kit = await createTestingGateway();
    const metrics = GatewayMetricsModule.forRootAsync({
      imports: [RegistryModule],
      inject: [REGISTRY],
      useFactory: (given: Registry) => ({ registry: given, prefix: 'async_' }),
    });
    app = await NestFactory.create({ module: class AsyncMetricsModule {}, imports: [kit.module(), metrics] }, { logger: false, abortOnError: false });
    await app.init();
    expect(app.get(GatewayMetrics).registry).toBe(registry);
    expect(sample(await registry.metrics(), 'async_events_received_total', { shard: '0', event: 'READY' })).toBe(1);
  });
});
