import { GatewayIntentBits } from 'discord-api-types/v10';
import { Shard } from '../lib';
import { LocalGateway } from '../lib/testing';
import { playScript } from './script';

/**
 * Sample bot. With DISCORD_TOKEN set it connects to Discord; without it, it starts the local gateway
 * in-process, plays a scripted stream (guilds, messages, a reconnect, a resume) and exits.
 */
async function main(): Promise<void> {
  const token = process.env.DISCORD_TOKEN;
  const gateway = token ? null : await LocalGateway.start({ heartbeatInterval: 2_000, guilds: ['81384788765712384'] });
  const shard = new Shard({
    id: 0,
    total: 1,
    token: token ?? gateway!.token,
    intents: GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessages,
    gatewayUrl: gateway?.url,
    backoff: gateway ? { baseMs: 100, maxMs: 1_000 } : undefined,
  });
  const messagesPerGuild = new Map<string, number>();
  shard.debug$.subscribe((line) => log(line));
  shard.dispatch$.subscribe((event) => {
    if (event.t === 'MESSAGE_CREATE') {
      const guild = (event.d as { guild_id?: string }).guild_id ?? 'dm';
      messagesPerGuild.set(guild, (messagesPerGuild.get(guild) ?? 0) + 1);
    }
    log(`event ${event.t} #${event.s}`);
  });

  await shard.connect();
  if (gateway) {
    await playScript(gateway);
    log(`messages per guild: ${JSON.stringify(Object.fromEntries(messagesPerGuild))}`);
    await shard.close();
    await gateway.close();
    return;
  }
  process.once('SIGINT', () => void shard.close().then(() => process.exit(0)));
}

function log(line: string): void {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`${error.name}: ${error.message}\n`);
  process.exit(1);
});
