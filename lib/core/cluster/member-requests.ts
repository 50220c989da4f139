import { randomBytes } from 'node:crypto';
// The gateway entry point alone: the full v10 index also loads every REST and payload module at run time.
import { GatewayOpcodes } from 'discord-api-types/gateway/v10';
import type {
  APIGuildMember,
  GatewayGuildMembersChunkDispatchData,
  GatewayPresenceUpdate,
  GatewaySendPayload,
} from 'discord-api-types/v10';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import type { GatewayDispatch } from '../interfaces/gateway-dispatch.interface';
import { isObject } from '../shard/is-object';
import { requireSnowflake } from '../shard/snowflake';
import type { RequestTransport } from './request-transport';
import { targetShard, type ShardLocator } from './target-shard';

/** Options of a member request (`Cluster.requestGuildMembers`, `ShardService.requestGuildMembers`). */
export interface RequestGuildMembersOptions {
  /** Guild to list. */
  guildId: string;
  /** Username prefix; `''` with `limit` 0 lists every member. @defaultValue `''` */
  query?: string;
  /** Most members to return; 0 means all (with an empty query). @defaultValue `0` */
  limit?: number;
  /** Specific members to fetch (at most 100), instead of `query`. */
  userIds?: string[];
  /** Include presences (needs the GUILD_PRESENCES intent). @defaultValue `false` */
  presences?: boolean;
  /** Give up after this long, ms. @defaultValue `30000` */
  timeoutMs?: number;
  /** Shard to send it through. @defaultValue the shard of `guildId` */
  shardId?: number;
  /**
   * The request's `nonce` (1 to 32 bytes, unique among this process's requests in flight), e.g. to match the
   * chunks in your own `GUILD_MEMBERS_CHUNK` handler. @defaultValue 24 random hex digits
   */
  nonce?: string;
}

/** What a member request returned, all chunks together. */
export interface GuildMembersResult {
  /** The guild listed. */
  guildId: string;
  /** The request's nonce, as its chunks carried it. */
  nonce: string;
  /** Every member of every chunk. */
  members: APIGuildMember[];
  /** Their presences, when asked for. */
  presences: GatewayPresenceUpdate[];
  /** Requested user ids that are not members. */
  notFound: string[];
}

/** What {@link MemberRequests} needs of a cluster: a {@link RequestTransport} that also locates a guild's shard. */
export type MemberRequestTransport = RequestTransport & ShardLocator;

/**
 * Sends Request Guild Members (op 8) and collects every `GUILD_MEMBERS_CHUNK` of the answer (matched by nonce).
 * Honours `RATE_LIMITED` (waits `retry_after`, then asks again) and Discord's limit of one full-list request per
 * guild per cooldown (a second one waits its turn).
 */
export class MemberRequests {
  /** When the last full-list request of each guild was (or will be) sent, ms since the epoch. */
  private readonly lastFullRequest = new Map<string, number>();
  /** Nonces of the requests in flight. */
  private readonly nonces = new Set<string>();

  /**
   * @param transport - the cluster the requests go through
   * @param cooldownMs - minimum time between two full-list requests for one guild, ms
   */
  constructor(
    private readonly transport: MemberRequestTransport,
    private readonly cooldownMs: number,
  ) {}

  /**
   * Requests guild members and resolves with every chunk of the answer together.
   * @throws {@link GatewayOptionsError} for invalid options (before anything is sent); rejects on a timeout, on a
   * malformed reply (a `MalformedPayloadError` naming the request) or when the command cannot be sent.
   */
  async request(options: RequestGuildMembersOptions): Promise<GuildMembersResult> {
    requireSnowflake('guildId', options?.guildId);
    const userIds = options.userIds;
    if (userIds !== undefined) {
      if (!Array.isArray(userIds) || userIds.length === 0 || userIds.length > 100) {
        throw new GatewayOptionsError('userIds', 'must be an array of 1 to 100 user ids');
      }
      userIds.forEach((id, i) => requireSnowflake(`userIds[${i}]`, id));
    }
    const query = options.query ?? '';
    const limit = options.limit ?? 0;
    if (typeof query !== 'string') throw new GatewayOptionsError('query', 'must be a string');
    if (!Number.isInteger(limit) || limit < 0 || limit > 100_000) throw new GatewayOptionsError('limit', 'must be an integer >= 0');
    const timeoutMs = options.timeoutMs ?? 30_000;
    const guildId = options.guildId;
    const shardId = targetShard(this.transport, guildId, options.shardId);
    const nonce = options.nonce ?? randomBytes(12).toString('hex');
    if (typeof nonce !== 'string' || nonce === '' || Buffer.byteLength(nonce) > 32) {
      throw new GatewayOptionsError('nonce', 'must be a string of 1 to 32 bytes');
    }
    if (this.nonces.has(nonce)) throw new GatewayOptionsError('nonce', 'is already used by a member request in flight');
    const fullList = userIds === undefined && query === '' && limit === 0;
    if (fullList) {
      const wait = (this.lastFullRequest.get(guildId) ?? -Infinity) + this.cooldownMs - Date.now();
      this.lastFullRequest.set(guildId, Date.now() + Math.max(0, wait));
      if (wait > 0) await sleep(wait);
    }
    this.transport.dispatchFilter?.add('GUILD_MEMBERS_CHUNK', 'RATE_LIMITED');
    if (this.nonces.has(nonce)) throw new GatewayOptionsError('nonce', 'is already used by a member request in flight');
    this.nonces.add(nonce);
    const payload: GatewaySendPayload = {
      op: GatewayOpcodes.RequestGuildMembers,
      d: userIds
        ? { guild_id: guildId, user_ids: userIds, presences: !!options.presences, nonce }
        : { guild_id: guildId, query, limit, presences: !!options.presences, nonce },
    };
    return this.collect(shardId, guildId, nonce, payload, timeoutMs);
  }

  private collect(shardId: number, guildId: string, nonce: string, payload: GatewaySendPayload, timeoutMs: number): Promise<GuildMembersResult> {
    const transport = this.transport;
    const request = `the member request for guild ${guildId}`;
    return new Promise<GuildMembersResult>((resolve, reject) => {
      const result: GuildMembersResult = { guildId, nonce, members: [], presences: [], notFound: [] };
      const seen = new Set<number>();
      let retry: NodeJS.Timeout | null = null;
      const finish = (error?: Error) => {
        this.nonces.delete(nonce);
        subscription.unsubscribe();
        clearTimeout(timer);
        if (retry) clearTimeout(retry);
        if (error) reject(error);
        else resolve(result);
      };
      const timer = setTimeout(
        () => finish(new Error(`Member request for guild ${guildId} got no complete answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onChunk = (event: GatewayDispatch) => {
        const chunk = readMembersChunk(event.d, nonce);
        if (chunk === null) return;
        if (typeof chunk === 'string') return finish(transport.reportMalformed(event, chunk, request));
        if (seen.has(chunk.chunkIndex)) return;
        seen.add(chunk.chunkIndex);
        // One by one: spreading a huge array into push() overflows the call stack.
        for (const member of chunk.members) result.members.push(member);
        for (const presence of chunk.presences) result.presences.push(presence);
        for (const id of chunk.notFound) result.notFound.push(id);
        if (seen.size >= chunk.chunkCount) finish();
      };
      const onRateLimited = (event: GatewayDispatch) => {
        const limited = readRateLimited(event.d, nonce);
        if (limited === null) return;
        if (typeof limited === 'string') return finish(transport.reportMalformed(event, limited, request));
        if (retry) clearTimeout(retry);
        retry = setTimeout(() => {
          retry = null;
          transport.send(shardId, payload).catch((error: Error) => finish(error));
        }, Math.min(Math.ceil(limited * 1000), timeoutMs));
      };
      const subscription = transport.dispatch$.subscribe((event) => {
        if (event.shardId !== shardId) return;
        try {
          if (event.t === 'GUILD_MEMBERS_CHUNK') onChunk(event);
          else if (event.t === 'RATE_LIMITED') onRateLimited(event);
        } catch (error) {
          finish(transport.reportMalformed(event, `could not be read: ${(error as Error)?.message ?? String(error)}`, request));
        }
      });
      transport.send(shardId, payload).catch((error: Error) => finish(error));
    });
  }
}

/** What a member request reads of a `GUILD_MEMBERS_CHUNK`, checked; members and presences pass on as they came. */
interface MembersChunk {
  chunkIndex: number;
  chunkCount: number;
  members: GatewayGuildMembersChunkDispatchData['members'];
  presences: GatewayPresenceUpdate[];
  notFound: string[];
}

/**
 * A `GUILD_MEMBERS_CHUNK` of the request with `nonce`: null when it belongs to another request, the problem when it
 * is malformed and may have been this request's reply (its nonce cannot be read, or it is this request's).
 */
function readMembersChunk(d: unknown, nonce: string): MembersChunk | string | null {
  if (!isObject(d)) return 'd is not an object';
  if (d.nonce !== undefined && typeof d.nonce !== 'string') return 'd.nonce is not a string';
  if (d.nonce !== nonce) return null;
  const { members, presences = [], not_found: notFound = [], chunk_count: chunkCount, chunk_index: chunkIndex } = d;
  if (!Array.isArray(members)) return 'd.members is not an array';
  if (typeof chunkCount !== 'number' || !Number.isInteger(chunkCount) || chunkCount < 1) return 'd.chunk_count is not an integer >= 1';
  if (typeof chunkIndex !== 'number' || !Number.isInteger(chunkIndex) || chunkIndex < 0 || chunkIndex >= chunkCount) {
    return 'd.chunk_index is not an integer from 0 to chunk_count - 1';
  }
  if (!Array.isArray(presences)) return 'd.presences is not an array';
  if (!Array.isArray(notFound)) return 'd.not_found is not an array';
  return { chunkIndex, chunkCount, members, presences, notFound };
}

/**
 * The wait, in seconds, of a `RATE_LIMITED` for the member request with `nonce`: null when it is for another
 * request or opcode, the problem when it is malformed and may have been this request's.
 */
function readRateLimited(d: unknown, nonce: string): number | string | null {
  if (!isObject(d)) return 'd is not an object';
  if (d.opcode !== GatewayOpcodes.RequestGuildMembers) return typeof d.opcode === 'number' ? null : 'd.opcode is not a number';
  const meta = d.meta;
  if (!isObject(meta)) return 'd.meta is not an object';
  if (meta.nonce !== nonce) return meta.nonce === undefined || typeof meta.nonce === 'string' ? null : 'd.meta.nonce is not a string';
  const wait = d.retry_after;
  if (typeof wait !== 'number' || !Number.isFinite(wait) || wait < 0) return 'd.retry_after is not a number >= 0';
  return wait;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
