// The gateway entry point alone: the full v10 index also loads every REST and payload module at run time.
import { GatewayOpcodes } from 'discord-api-types/gateway/v10';
import type { GatewayPresenceUpdateData, GatewaySendPayload, GatewayVoiceStateUpdateData } from 'discord-api-types/v10';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import { requireSnowflake } from './snowflake';

const STATUSES = new Set(['online', 'dnd', 'idle', 'invisible', 'offline']);

/**
 * The Presence Update command (op 3) for `presence`, checked (`since` defaults to null, `afk` to false).
 * @throws {@link GatewayOptionsError} naming the first invalid field.
 */
export function presenceUpdateCommand(presence: GatewayPresenceUpdateData): GatewaySendPayload {
  if (typeof presence !== 'object' || presence === null) throw new GatewayOptionsError('presence', 'must be an object');
  if (!STATUSES.has(presence.status)) {
    throw new GatewayOptionsError('presence.status', `must be one of ${[...STATUSES].join(', ')}`);
  }
  if (!Array.isArray(presence.activities)) throw new GatewayOptionsError('presence.activities', 'must be an array');
  return {
    op: GatewayOpcodes.PresenceUpdate,
    d: { since: presence.since ?? null, activities: presence.activities, status: presence.status, afk: presence.afk ?? false },
  };
}

/**
 * The Voice State Update command (op 4) for `state`: joins, moves or leaves (`channel_id` null) a voice channel.
 * @throws {@link GatewayOptionsError} naming the first invalid field.
 */
export function voiceStateUpdateCommand(state: GatewayVoiceStateUpdateData): GatewaySendPayload {
  requireSnowflake('voiceState.guild_id', state?.guild_id);
  if (state.channel_id !== null) requireSnowflake('voiceState.channel_id', state.channel_id);
  return {
    op: GatewayOpcodes.VoiceStateUpdate,
    d: { guild_id: state.guild_id, channel_id: state.channel_id, self_mute: !!state.self_mute, self_deaf: !!state.self_deaf },
  };
}
