// The gateway entry point alone: the full v10 index also loads every REST and payload module at run time.
import { GatewayOpcodes } from 'discord-api-types/gateway/v10';
import type { APISoundboardSound } from 'discord-api-types/v10';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';
import { isObject } from '../shard/is-object';
import { requireSnowflake } from '../shard/snowflake';
import type { RequestTransport } from './request-transport';
import { targetShard, type ShardLocator } from './target-shard';

/** Options of a soundboard request (`Cluster.requestSoundboardSounds`, `ShardService.requestSoundboardSounds`). */
export interface RequestSoundboardSoundsOptions {
  /** Give up after this long, ms. @defaultValue `30000` */
  timeoutMs?: number;
  /** Shard to send every guild's request through. @defaultValue the shard of each guild */
  shardId?: number;
}

/** What {@link SoundboardRequests} needs of a cluster: a {@link RequestTransport} that also locates a guild's shard. */
export type SoundboardRequestTransport = RequestTransport & ShardLocator;

/**
 * Sends Request Soundboard Sounds (op 31), one per shard for its guilds, and collects one `SOUNDBOARD_SOUNDS` per
 * guild.
 */
export class SoundboardRequests {
  constructor(private readonly transport: SoundboardRequestTransport) {}

  /**
   * Requests the soundboard sounds of `guildIds`; resolves with them by guild id once every guild answered. The
   * second argument is the timeout (ms) or {@link RequestSoundboardSoundsOptions}.
   * @throws {@link GatewayOptionsError} for invalid guild ids or shard (before anything is sent); rejects on a
   * timeout, on a malformed reply (a `MalformedPayloadError` naming the request) or when a command cannot be sent.
   */
  async request(guildIds: string[], timeoutOrOptions: number | RequestSoundboardSoundsOptions = {}): Promise<Record<string, APISoundboardSound[]>> {
    const { timeoutMs = 30_000, shardId: explicitShard } = typeof timeoutOrOptions === 'number' ? { timeoutMs: timeoutOrOptions } : (timeoutOrOptions ?? {});
    if (!Array.isArray(guildIds) || guildIds.length === 0) throw new GatewayOptionsError('guildIds', 'must be a non-empty array');
    guildIds.forEach((id, i) => requireSnowflake(`guildIds[${i}]`, id));
    const byShard = new Map<number, string[]>();
    for (const id of guildIds) {
      const shardId = targetShard(this.transport, id, explicitShard);
      byShard.set(shardId, [...(byShard.get(shardId) ?? []), id]);
    }
    this.transport.dispatchFilter?.add('SOUNDBOARD_SOUNDS');
    return this.collect(guildIds, byShard, timeoutMs);
  }

  private collect(guildIds: string[], byShard: Map<number, string[]>, timeoutMs: number): Promise<Record<string, APISoundboardSound[]>> {
    const transport = this.transport;
    const wanted = new Set(guildIds);
    const result: Record<string, APISoundboardSound[]> = {};
    const request = `the soundboard request for guilds ${guildIds.join(', ')}`;
    return new Promise((resolve, reject) => {
      const finish = (error?: Error) => {
        subscription.unsubscribe();
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(result);
      };
      const timer = setTimeout(() => finish(new Error(`Soundboard request got no answer for every guild within ${timeoutMs} ms`)), timeoutMs);
      const onSounds = (event: GatewayDispatch) => {
        const sounds = readSoundboardSounds(event.d, wanted);
        if (sounds === null) return;
        if (typeof sounds === 'string') return finish(transport.reportMalformed(event, sounds, request));
        wanted.delete(sounds.guild_id);
        result[sounds.guild_id] = sounds.soundboard_sounds;
        if (wanted.size === 0) finish();
      };
      const subscription = transport.dispatch$.subscribe((event) => {
        if (event.t !== 'SOUNDBOARD_SOUNDS' || !byShard.has(event.shardId)) return;
        try {
          onSounds(event);
        } catch (error) {
          finish(transport.reportMalformed(event, `could not be read: ${(error as Error)?.message ?? String(error)}`, request));
        }
      });
      for (const [shardId, ids] of byShard) {
        transport.send(shardId, { op: GatewayOpcodes.RequestSoundboardSounds, d: { guild_ids: ids } }).catch((error: Error) => finish(error));
      }
    });
  }
}

/**
 * A `SOUNDBOARD_SOUNDS` for one of the `wanted` guilds: null when it is for another guild, the problem when it is
 * malformed and may have been for one of them.
 */
function readSoundboardSounds(d: unknown, wanted: ReadonlySet<string>): { guild_id: string; soundboard_sounds: APISoundboardSound[] } | string | null {
  if (!isObject(d)) return 'd is not an object';
  if (typeof d.guild_id !== 'string') return 'd.guild_id is not a string';
  if (!wanted.has(d.guild_id)) return null;
  if (!Array.isArray(d.soundboard_sounds)) return 'd.soundboard_sounds is not an array';
  return { guild_id: d.guild_id, soundboard_sounds: d.soundboard_sounds as APISoundboardSound[] };
}
