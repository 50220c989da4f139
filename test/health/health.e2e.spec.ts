import 'reflect-metadata';
import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { get } from 'node:http';
import { Injectable, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClusterService } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import { GatewayHealthIndicator, GatewayHealthModule, type GatewayHealthOptions, type GatewayHealthOptionsFactory } from '../../lib/health';
import { createTestingGateway, type TestingGateway } from '../../lib/nest/testing';
import { ObservabilityModule, type ObservabilityOptions } from '../../sample/observability.module';
import { TEST_HEARTBEAT_MS, eventuallyAsync } from '../helpers/gateway-test-kit';

/** Guilds on shard 0 and shard 1 of a two-shard bot: `(id >> 22) % 2`. */
const GUILDS = ['81384788765712384', '1023234123812343808'];

interface Reply {
  status: number;
  body: any;
}

/** One GET on a fresh connection (no keep-alive, so the server closes at once). */
function httpGet(url: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }));
    });
    request.on('error', reject);
    request.setTimeout(5_000, () => request.destroy(new Error(`GET ${url} timed out`)));
  });
}


let kit: TestingGateway | null = null;
let app: INestApplication | null = null;

void afterEach(async () => {
  await app?.close();
  await kit?.close();
  app = null;
  kit = null;
});

/** A two-shard bot on a local gateway with GET /health, listening on a free port of 127.0.0.1. */
async function start(options: ObservabilityOptions = {}): Promise<{ url: string; kit: TestingGateway; cluster: ClusterService }> {
  // A 2 s HELLO timeout: the outage test waits for it to bring a shard back.
  kit = await createTestingGateway({ shards: 2, guilds: GUILDS, heartbeatInterval: TEST_HEARTBEAT_MS, module: { helloTimeout: 2_000 } });
  const root = { module: class HealthTestModule {}, imports: [kit.module(), ObservabilityModule.register(options)] };
  app = await NestFactory.create(root, { logger: false, abortOnError: false });
  await app.listen(0, '127.0.0.1');
  return { url: `${await app.getUrl()}/health`, kit, cluster: app.get(ClusterService) };
}

void describe('GET /health with GatewayHealthIndicator', () => {
  void it('is 200 "up" with the details of every shard while all are ready', async () => {
    const { url } = await start();
    const reply = await httpGet(url);
    expect(reply.status).toBe(200);
    expect(reply.body.status).toBe('ok');
    const result = reply.body.details['discord-gateway'];
    expect(result.status).toBe('up');
    for (const id of ['0', '1']) {
      expect(result.shards[id]).toMatchObject({ state: 'ready', lagMs: 0, reconnectAttempts: 0, notReadyForMs: 0 });
      expect(Object.keys(result.shards[id]).sort()).toEqual(['lagMs', 'latency', 'notReadyForMs', 'reconnectAttempts', 'state']);
    }
  });

  void it('is 503 "down" with the fatal error of shard 0 once it is closed with 4014', async () => {
    const { url, kit: running, cluster } = await start();
    running.gateway.closeShard(0, 4014, 'Disallowed intent(s).');
    await eventuallyAsync(async () => cluster.info()[0].state === ShardState.FatallyClosed, 15_000, 'shard 0 fatally closed');

    const reply = await httpGet(url);
    expect(reply.status).toBe(503);
    expect(reply.body.status).toBe('error');
    const result = reply.body.error['discord-gateway'];
    expect(result.status).toBe('down');
    expect(result.message).toMatch(/shard 0 is fatally closed/);
    expect(result.shards['0'].state).toBe('fatally-closed');
    expect(result.shards['0'].error).toMatch(/4014/);
    // The other shard is reported, and fine.
    expect(result.shards['1'].state).toBe('ready');
  });

  void it('stays up through a short outage, is down once a shard has not been ready for longer than the threshold, and recovers', async () => {
    const { url, kit: running, cluster } = await start({ disconnectedThresholdMs: 1_000 });
    // New connections get no HELLO: shard 1 cannot come back until the hello timeout (2 s) reconnects it.
    running.gateway.behaviour.sendHello = false;
    running.gateway.closeShard(1, 4000);
    await eventuallyAsync(async () => cluster.info()[1].state !== ShardState.Ready, 15_000, 'shard 1 to leave ready');

    const early = await httpGet(url);
    expect(early.status).toBe(200);
    expect(early.body.details['discord-gateway'].shards['1'].state).not.toBe('ready');

    await eventuallyAsync(async () => (await httpGet(url)).status === 503, 15_000, 'GET /health to turn 503');
    const down = await httpGet(url);
    const result = down.body.error['discord-gateway'];
    expect(result.message).toMatch(/shard 1 has not been ready for \d+ ms/);
    expect(result.shards['1'].notReadyForMs).toBeGreaterThan(1_000);
    expect(result.shards['0']).toMatchObject({ state: 'ready', notReadyForMs: 0 });

    running.gateway.behaviour.sendHello = true;
    await running.gateway.waitForReady(1, 15_000);
    await eventuallyAsync(async () => (await httpGet(url)).status === 200, 15_000, 'GET /health to turn 200 again');
    const recovered = await httpGet(url);
    expect(recovered.status).toBe(200);
    expect(recovered.body.details['discord-gateway'].shards['1']).toMatchObject({ state: 'ready', notReadyForMs: 0 });
  });
});

/** Health options from a class, for `forRootAsync({ useClass })`. */
@Injectable()
class HealthOptionsFromConfig implements GatewayHealthOptionsFactory {
  createGatewayHealthOptions(): GatewayHealthOptions {
    return { key: 'bot-gateway', disconnectedThresholdMs: 5_000 };
  }
}

void describe('GatewayHealthModule.forRootAsync', () => {
  void it('gives the indicator the options a useClass factory builds', async () => {
    kit = await createTestingGateway({ shards: 2, guilds: GUILDS });
    const health = GatewayHealthModule.forRootAsync({ useClass: HealthOptionsFromConfig });
    app = await NestFactory.create({ module: class AsyncHealthModule {}, imports: [kit.module(), health] }, { logger: false, abortOnError: false });
    await app.init();
    const result = app.get(GatewayHealthIndicator).isHealthy();
    expect(Object.keys(result)).toEqual(['bot-gateway']);
    expect(result['bot-gateway'].status).toBe('up');
  });
});
