import type { LocalGateway } from '../lib/testing';

const GUILD = '81384788765712384';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function message(id: number, content: string): object {
  return {
    id: String(1_200_000_000_000_000_000n + BigInt(id)),
    channel_id: '81384788765712385',
    guild_id: GUILD,
    author: { id: '80351110224678912', username: 'nelly', discriminator: '0', global_name: 'Nelly', avatar: null },
    content,
    timestamp: new Date().toISOString(),
    edited_timestamp: null,
    tts: false,
    mention_everyone: false,
    mentions: [],
    mention_roles: [],
    attachments: [],
    embeds: [],
    pinned: false,
    type: 0,
  };
}

/** Plays a short, realistic stream on shard 0 of the local gateway: messages, a reconnect, a resume. */
export async function playScript(gateway: LocalGateway): Promise<void> {
  gateway.dispatch(0, 'MESSAGE_CREATE', message(1, 'hello there'));
  gateway.dispatch(0, 'TYPING_START', { channel_id: '81384788765712385', guild_id: GUILD, user_id: '80351110224678912', timestamp: Math.floor(Date.now() / 1000) });
  gateway.dispatch(0, 'MESSAGE_CREATE', message(2, '!stats'));
  await sleep(300);
  gateway.reconnect(0);
  await gateway.waitForReady(0);
  gateway.dispatch(0, 'MESSAGE_CREATE', message(3, 'back after the reconnect'));
  await sleep(300);
  gateway.dropShard(0);
  gateway.dispatch(0, 'MESSAGE_CREATE', message(4, 'sent while the bot was away, replayed on resume'));
  await gateway.waitForReady(0);
  await sleep(300);
}
