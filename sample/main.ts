import 'reflect-metadata';
import { Logger, type INestApplicationContext, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { GatewayIntentBits } from 'discord-api-types/v10';
import { ClusterService } from '../lib/nest';
import { LocalGateway } from '../lib/nest/testing';
import { AppModule } from './app.module';
import { DEMO_GUILDS, playDemoScript } from './demo-script';
import { MessageStatsService } from './message-stats.service';

const INTENTS =
  GatewayIntentBits.Guilds |
  GatewayIntentBits.GuildMembers |
  GatewayIntentBits.GuildMessages |
  GatewayIntentBits.MessageContent;

/**
 * Runs the sample bot. With DISCORD_TOKEN set it connects to Discord until stopped (Ctrl+C). Without it, it
 * starts the local gateway in-process with two shards, plays a scripted stream and exits.
 * With SAMPLE_HTTP_PORT set it also serves GET /health and GET /metrics, until it stops; with SAMPLE_KEEP_SERVING=1
 * as well, it stays up after the demo (until Ctrl+C or SIGTERM) so they can be looked at.
 */
async function bootstrap(): Promise<void> {
  const token = process.env.DISCORD_TOKEN;
  const logger = new Logger('Sample');
  const gateway = token
    ? null
    : await LocalGateway.start({ heartbeatInterval: 5_000, shards: 2, guilds: DEMO_GUILDS, membersPerGuild: 1_500 });
  if (gateway) logger.log(`no DISCORD_TOKEN: running against the local gateway at ${gateway.url}`);

  const httpPort = parseHttpPort(process.env.SAMPLE_HTTP_PORT);
  const root = AppModule.register(
    {
      token: token ?? gateway!.token,
      intents: Number(process.env.DISCORD_INTENTS ?? INTENTS),
      apiUrl: gateway?.apiUrl,
      identifyWindowMs: gateway ? 200 : undefined,
      backoff: gateway ? { baseMs: 100, maxMs: 1_000 } : undefined,
    },
    { http: httpPort !== null },
  );
  const loggerLevels: LogLevel[] = ['log', 'warn', 'error'];
  let app: INestApplicationContext;
  if (httpPort === null) {
    app = await NestFactory.createApplicationContext(root, { logger: loggerLevels });
  } else {
    // SAMPLE_HTTP_PORT: serve GET /health and GET /metrics (SAMPLE_HTTP_HOST, default 127.0.0.1).
    const http = await NestFactory.create(root, { logger: loggerLevels });
    await http.listen(httpPort, process.env.SAMPLE_HTTP_HOST ?? '127.0.0.1');
    const url = (await http.getUrl()).replace('[::1]', 'localhost');
    logger.log(`serving ${url}/health and ${url}/metrics`);
    app = http;
  }
  app.enableShutdownHooks();

  if (!gateway) return;
  const cluster = app.get(ClusterService);
  await playDemoScript(gateway, (guildId) => cluster.shardIdForGuild(guildId));
  logger.log(`messages per guild: ${JSON.stringify(app.get(MessageStatsService).snapshot())}`);
  if (httpPort !== null && process.env.SAMPLE_KEEP_SERVING === '1') {
    // The shutdown hooks close the app on Ctrl+C / SIGTERM; the process then ends with the signal.
    logger.log('demo finished; SAMPLE_KEEP_SERVING=1: still serving until Ctrl+C');
    return;
  }
  await app.close();
  await gateway.close();
  logger.log('done');
}

/** The port of SAMPLE_HTTP_PORT, or null when it is not set. */
function parseHttpPort(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`SAMPLE_HTTP_PORT must be a port number, got "${value}"`);
  return port;
}

bootstrap().catch((error: Error) => {
  process.stderr.write(`${error.name}: ${error.message}\n`);
  process.exit(1);
});
