import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { GatewayIntentBits } from 'discord-api-types/v10';
import { ClusterService } from '../lib';
import { LocalGateway } from '../lib/testing';
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
 */
async function bootstrap(): Promise<void> {
  const token = process.env.DISCORD_TOKEN;
  const logger = new Logger('Sample');
  const gateway = token
    ? null
    : await LocalGateway.start({ heartbeatInterval: 5_000, shards: 2, guilds: DEMO_GUILDS, membersPerGuild: 1_500 });
  if (gateway) logger.log(`no DISCORD_TOKEN: running against the local gateway at ${gateway.url}`);

  const app = await NestFactory.createApplicationContext(
    AppModule.register({
      token: token ?? gateway!.token,
      intents: Number(process.env.DISCORD_INTENTS ?? INTENTS),
      apiUrl: gateway?.apiUrl,
      identifyWindowMs: gateway ? 200 : undefined,
      backoff: gateway ? { baseMs: 100, maxMs: 1_000 } : undefined,
    }),
    { logger: ['log', 'warn', 'error'] },
  );
  app.enableShutdownHooks();

  if (!gateway) return;
  const cluster = app.get(ClusterService);
  await playDemoScript(gateway, (guildId) => cluster.shardIdForGuild(guildId));
  logger.log(`messages per guild: ${JSON.stringify(app.get(MessageStatsService).snapshot())}`);
  await app.close();
  await gateway.close();
  logger.log('done');
}

bootstrap().catch((error: Error) => {
  process.stderr.write(`${error.name}: ${error.message}\n`);
  process.exit(1);
});
