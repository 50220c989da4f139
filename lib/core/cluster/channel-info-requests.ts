import { GatewayOpcodes, GatewayRequestChannelInfoField } from 'discord-api-types/gateway/v10';
import type { GatewayChannelInfoDispatchData } from 'discord-api-types/v10';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import { requireSnowflake } from '../shard/snowflake';
import type { RequestTransport } from './request-transport';

/** What {@link ChannelInfoRequests} needs of a cluster: its dispatches, its filter, a way to send and to report. */
export type ChannelInfoTransport = RequestTransport;

/** Options of a Request Channel Info (op 43). */
export interface RequestChannelInfoOptions {
  /** Fields to ask for. @defaultValue `['status', 'voice_start_time']` */
  fields?: (GatewayRequestChannelInfoField | (string & Record<never, never>))[];
  /** Give up after this long, ms. @defaultValue `30000` */
  timeoutMs?: number;
}

const DEFAULT_FIELDS = [GatewayRequestChannelInfoField.Status, GatewayRequestChannelInfoField.VoiceStartTime];

/**
 * Sends Request Channel Info (op 43) and collects its reply, the `CHANNEL_INFO` dispatch of the guild. The reply
 * carries no nonce, so requests for one guild run one after the other: each gets the reply to its own request.
 */
export class ChannelInfoRequests {
  /** The request in flight (or queued last) per guild. */
  private readonly tails = new Map<string, Promise<unknown>>();

  constructor(private readonly transport: ChannelInfoTransport) {}

  /**
   * Asks shard `shardId` for the channel info of `guildId`; resolves with the `CHANNEL_INFO` data.
   * @throws {@link GatewayOptionsError} for an invalid guild id, field list or timeout (before anything is sent).
   */
  request(shardId: number, guildId: string, options: RequestChannelInfoOptions = {}): Promise<GatewayChannelInfoDispatchData> {
    requireSnowflake('guildId', guildId);
    const fields = options.fields ?? DEFAULT_FIELDS;
    if (!Array.isArray(fields) || fields.length === 0 || !fields.every((f) => typeof f === 'string' && f !== '')) {
      throw new GatewayOptionsError('fields', 'must be a non-empty array of field names');
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new GatewayOptionsError('timeoutMs', 'must be an integer >= 1');
    const previous = this.tails.get(guildId) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.collect(shardId, guildId, [...fields], timeoutMs));
    this.tails.set(guildId, run);
    const forget = () => {
      if (this.tails.get(guildId) === run) this.tails.delete(guildId);
    };
    run.then(forget, forget);
    return run;
  }

  private collect(shardId: number, guildId: string, fields: string[], timeoutMs: number): Promise<GatewayChannelInfoDispatchData> {
    this.transport.dispatchFilter?.add('CHANNEL_INFO');
    return new Promise((resolve, reject) => {
      const finish = (error: Error | null, data?: GatewayChannelInfoDispatchData) => {
        subscription.unsubscribe();
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(data!);
      };
      const timer = setTimeout(
        () => finish(new Error(`Channel info request for guild ${guildId} got no CHANNEL_INFO within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const subscription = this.transport.dispatch$.subscribe((event) => {
        if (event.t !== 'CHANNEL_INFO' || event.shardId !== shardId) return;
        const reply = readChannelInfo(event.d, guildId);
        if (reply === null) return;
        if (typeof reply === 'string') finish(this.transport.reportMalformed(event, reply, `the channel info request for guild ${guildId}`));
        else finish(null, reply);
      });
      this.transport
        .send(shardId, { op: GatewayOpcodes.RequestChannelInfo, d: { guild_id: guildId, fields } })
        .catch((error: Error) => finish(error));
    });
  }
}

/**
 * The `CHANNEL_INFO` reply for `guildId`: null when it is another guild's, the problem when it is malformed and may
 * have been this guild's (its guild id cannot be read, or its channels are not a list).
 */
function readChannelInfo(d: unknown, guildId: string): GatewayChannelInfoDispatchData | string | null {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) return 'd is not an object';
  const data = d as { guild_id?: unknown; channels?: unknown };
  if (typeof data.guild_id !== 'string') return 'd.guild_id is not a string';
  if (data.guild_id !== guildId) return null;
  if (!Array.isArray(data.channels)) return 'd.channels is not an array';
  return d as GatewayChannelInfoDispatchData;
}
