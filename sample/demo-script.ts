import { Logger } from '@nestjs/common';
import { createMessage, createReactionAdd, createTypingStart, type LocalGateway } from '../lib/nest/testing';

/** The guilds of the demo bot. */
export const DEMO_GUILDS = ['81384788765712384', '1023234123812343808', '175928847299117063'];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Plays a short, realistic stream on the local gateway: messages in every guild, a `!stats` command, a
 * reconnect request (op 7) and a dropped connection whose missed events are replayed on resume.
 */
export async function playDemoScript(gateway: LocalGateway, shardIdForGuild: (guildId: string) => number): Promise<void> {
  const logger = new Logger('Demo');
  let seed = 0;
  const say = (guildId: string, content: string) =>
    gateway.dispatch(shardIdForGuild(guildId), 'MESSAGE_CREATE', createMessage(++seed, { guildId, content }));
  for (const guildId of DEMO_GUILDS) say(guildId, 'hello there');
  gateway.dispatch(shardIdForGuild(DEMO_GUILDS[0]), 'TYPING_START', createTypingStart(++seed, DEMO_GUILDS[0]));
  say(DEMO_GUILDS[0], 'how is everyone?');
  gateway.dispatch(shardIdForGuild(DEMO_GUILDS[0]), 'MESSAGE_REACTION_ADD', createReactionAdd(++seed, DEMO_GUILDS[0]));
  await sleep(300);
  say(DEMO_GUILDS[1], '!stats');
  await sleep(300);

  logger.log('the gateway asks shard 0 to reconnect (op 7)');
  gateway.reconnect(0);
  await gateway.waitForReady(0);
  say(DEMO_GUILDS[0], 'back after the reconnect');
  await sleep(300);

  const shard = shardIdForGuild(DEMO_GUILDS[2]);
  logger.log(`shard ${shard} loses its connection; two messages arrive meanwhile`);
  gateway.dropShard(shard);
  say(DEMO_GUILDS[2], 'sent while the bot was away');
  say(DEMO_GUILDS[2], 'replayed on resume, in order');
  await gateway.waitForReady(shard);
  await sleep(300);
  say(DEMO_GUILDS[2], '!stats');
  await sleep(500);
}
