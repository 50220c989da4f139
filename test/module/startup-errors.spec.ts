import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import { Cluster, GatewayModule, GatewayStartTimeoutError } from '../../lib/nest';
import { GatewayFatalError } from '../../lib/core';
import { CapturingLogger, NestHarness, moduleOptions, rejectionOf } from './nest-test-kit';

// What a bot author sees when the app cannot start: the message of app.init()'s rejection and the WARN lines.

const harness = new NestHarness();

/** A 127.0.0.1 port that nothing listens on (it was just released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

void describe('GatewayModule: start-up failures the user sees', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
    await harness.cleanup();
  });

  void it('a gateway URL that refuses connections: a WARN naming the URL and ECONNREFUSED after 3 attempts, then startTimeout fails app.init()', async () => {
    const gateway = await harness.gateway();
    const port = await closedPort();
    const url = `ws://127.0.0.1:${port}`;
    const logger = new CapturingLogger();
    const app = await harness.create(
      { imports: [GatewayModule.forRoot(moduleOptions(gateway, { gatewayUrl: url, shards: { total: 1, ids: [0] }, startTimeout: 3_000 }))] },
      logger,
    );

    const error = await rejectionOf(app.init());

    expect(error).toBeInstanceOf(GatewayStartTimeoutError);
    const message = (error as Error).message;
    expect(message).toContain('startTimeout (3000 ms)');
    expect(message).toMatch(new RegExp(`shard 0 is (disconnected|connecting) after \\d+ failed attempt\\(s\\) \\(last error: could not connect to ${url}/\\?v=10[^)]*: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)`));
    const warnings = logger.of('warn').map((line) => line.message);
    expect(warnings[0]).toMatch(
      new RegExp(`^Shard 0 is not connected after 3 attempts in a row \\(retrying with backoff\\); last error: could not connect to ${url}/\\?v=10.*ECONNREFUSED`),
    );
    // The deadline closed the shard: nothing keeps retrying behind the failed start.
    expect(app.get(Cluster).shards.size).toBe(0);
    expect(gateway.connections).toHaveLength(0);
  });

  void it('heartbeats too frequent for commandRateLimit: app.init() fails with an error naming heartbeatInterval and commandRateLimit, sending nothing', async () => {
    // The README's old local-gateway snippet: 300 ms heartbeats with Discord's 120 frames per 60 s.
    const gateway = await harness.gateway({ heartbeatInterval: 300 });
    const app = await harness.create(
      { imports: [GatewayModule.forRoot(moduleOptions(gateway, { commandRateLimit: { limit: 120, windowMs: 60_000 } }))] },
      new CapturingLogger(),
    );

    const error = await rejectionOf(app.init());

    expect(error).toBeInstanceOf(GatewayFatalError);
    expect((error as Error).message).toBe(
      "Shard 0 closed for good (1000): the gateway's heartbeat_interval of 300 ms (a LocalGateway's heartbeatInterval option) " +
        'needs 205 heartbeats per command window, but commandRateLimit allows 120 frames per 60000 ms, which leaves no room ' +
        'for commands. Give commandRateLimit a shorter windowMs (SHORT_SHARD_TIMINGS in nestjs-discord-gateway/testing uses 6000) ' +
        'or the gateway a longer heartbeatInterval',
    );
    expect(gateway.connections).toHaveLength(1);
    expect(gateway.connections[0].frames).toEqual([]);
  });

  /** What `app.init()` rejects with when GET /gateway/bot goes to `apiUrl`. */
  async function initErrorWithApiUrl(apiUrl: string): Promise<Error> {
    const gateway = await harness.gateway();
    const app = await harness.create({ imports: [GatewayModule.forRoot(moduleOptions(gateway, { apiUrl }))] }, new CapturingLogger());
    return (await rejectionOf(app.init())) as Error;
  }

  void it('an apiUrl that refuses connections: app.init() fails with the cause (ECONNREFUSED)', async () => {
    const port = await closedPort();

    const error = await initErrorWithApiUrl(`http://127.0.0.1:${port}/api`);

    expect(error.message).toBe(
      `GET http://127.0.0.1:${port}/api/v10/gateway/bot failed: fetch failed (connect ECONNREFUSED 127.0.0.1:${port})`,
    );
  });

  void it('an https apiUrl on a server that does not speak TLS: app.init() fails with the TLS error', async () => {
    const server = createHttpServer((_request, response) => response.end('plain HTTP'));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };

    const error = await initErrorWithApiUrl(`https://127.0.0.1:${port}/api`);

    expect(error.message).toMatch(
      new RegExp(`^GET https://127\\.0\\.0\\.1:${port}/api/v10/gateway/bot failed: fetch failed \\(ERR_SSL_WRONG_VERSION_NUMBER: .*wrong version number.*\\)$`),
    );
  });
});
