// The gateway entry point alone: the full v10 index also loads every REST and payload module at run time.
import { GatewayCloseCodes } from 'discord-api-types/gateway/v10';

/** What a shard does after its connection closes with a given code. */
export type CloseAction = 'resume' | 'identify' | 'fatal';

const IDENTIFY_AGAIN = new Set<number>([
  GatewayCloseCodes.NotAuthenticated,
  GatewayCloseCodes.AlreadyAuthenticated,
  GatewayCloseCodes.InvalidSeq,
  GatewayCloseCodes.SessionTimedOut,
]);

const FATAL_REASONS = new Map<number, string>([
  [GatewayCloseCodes.AuthenticationFailed, 'authentication failed: the token is invalid'],
  [GatewayCloseCodes.InvalidShard, 'invalid shard: the shard id or shard count is not valid for this bot'],
  [GatewayCloseCodes.ShardingRequired, 'sharding required: the bot is in too many guilds for this shard count'],
  [GatewayCloseCodes.InvalidAPIVersion, 'invalid API version: the gateway rejected version 10'],
  [GatewayCloseCodes.InvalidIntents, 'invalid intents: the intents bitfield contains unknown bits'],
  [
    GatewayCloseCodes.DisallowedIntents,
    'disallowed intents: enable them in the developer portal, or ask Discord for approval of privileged intents',
  ],
]);

/**
 * Maps a close code to the shard's next step: resume the session, start a new one, or stop for good.
 * Unknown codes, 1006 and closes without a frame resume.
 */
export function closeAction(code: number): CloseAction {
  if (FATAL_REASONS.has(code)) return 'fatal';
  if (IDENTIFY_AGAIN.has(code)) return 'identify';
  return 'resume';
}

/** Plain-words reason for a fatal close code. */
export function fatalReason(code: number): string {
  return FATAL_REASONS.get(code) ?? `close code ${code}`;
}
