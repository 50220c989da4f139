import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatewayCloseCodes, GatewayIntentBits, GatewayOpcodes } from 'discord-api-types/v10';
import type {
  APIGuildMember,
  GatewayChannelInfoChannel,
  GatewayChannelInfoDispatchData,
  GatewayGuildMembersChunkDispatchData,
  GatewayRateLimitedRequestGuildMembersDispatchData,
  GatewaySoundboardSoundsDispatchData,
} from 'discord-api-types/v10';
import WebSocket, { WebSocketServer } from 'ws';
import { MAX_OUTGOING_PAYLOAD_BYTES } from '../constants/gateway.constants';
import { LocalGatewayConnection } from './local-gateway-connection';
import { createGuildMembers } from './payload-factories';
import type { LocalGatewayChaosOptions, LocalGatewayOptions, LocalSessionStartLimit } from './local-gateway-options.interface';
import type { RecordedFrame } from './recorded-frame.interface';

/** See {@link LocalGateway.rewriteDispatches}: the data to send for dispatch `t` to shard `shardId`. */
export type DispatchRewrite = (t: string, d: unknown, shardId: number) => unknown;

interface LocalSession {
  id: string;
  shardId: number;
  total: number;
  seq: number;
  log: { s: number; t: string; text: string }[];
  connection: LocalGatewayConnection | null;
}

const CLIENT_OPCODES = new Set<number>([
  GatewayOpcodes.Heartbeat,
  GatewayOpcodes.Identify,
  GatewayOpcodes.PresenceUpdate,
  GatewayOpcodes.VoiceStateUpdate,
  GatewayOpcodes.Resume,
  GatewayOpcodes.RequestGuildMembers,
  GatewayOpcodes.RequestSoundboardSounds,
  GatewayOpcodes.RequestChannelInfo,
]);

const PRIVILEGED_INTENTS =
  GatewayIntentBits.GuildMembers | GatewayIntentBits.GuildPresences | GatewayIntentBits.MessageContent;

const KNOWN_INTENTS = Object.values(GatewayIntentBits)
  .filter((value): value is number => typeof value === 'number')
  .reduce((mask, bit) => mask | bit, 0);

/** A dispatch sent again to a client that had already been sent it (chaos mode). */
export interface LocalDuplicateDispatch {
  shardId: number;
  sessionId: string;
  s: number;
  t: string;
  /** `replay-overlap`: part of a RESUME's replay from before its `seq`; `resend`: sent again during the session. */
  cause: 'replay-overlap' | 'resend';
}

/** Bot user the local gateway reports in READY. */
export const LOCAL_BOT_USER = {
  id: '1000000000000000001',
  username: 'local-bot',
  discriminator: '0',
  global_name: null,
  avatar: null,
  bot: true,
};

/**
 * A Discord gateway on 127.0.0.1 that speaks gateway v10 over real WebSockets, for tests and demos.
 * It serves `GET /api/v10/gateway(/bot)` on the same port, validates IDENTIFY, keeps sessions and replays
 * them on RESUME, compresses with zlib-stream, records every frame clients send, and lets a test inject
 * dispatches and faults.
 *
 * Events: `connection` (a {@link LocalGatewayConnection}), `frame` (a {@link RecordedFrame} and its connection),
 * `ready` (`{ shardId, sessionId }` after READY or RESUMED), `duplicate` (a {@link LocalDuplicateDispatch}, chaos mode).
 */
export class LocalGateway extends EventEmitter {
  /** Every payload every client sent, in arrival order. */
  readonly frames: RecordedFrame[] = [];
  /** Every connection ever opened, in order. */
  readonly connections: LocalGatewayConnection[] = [];
  /**
   * Switches tests may flip at any time: send HELLO on new connections; answer IDENTIFY and RESUME;
   * acknowledge heartbeats; `refuseResume`: refuse the WebSocket upgrade (HTTP 503) of connections to the
   * `/resume` path, the default resume URL, as an unreachable resume node would; `dropAfterHello`: close each new
   * uncompressed connection with 4000 right after HELLO, both frames in one TCP write, so the client reads them
   * together.
   */
  readonly behaviour = { sendHello: true, answerHandshake: true, acks: true, refuseResume: false, dropAfterHello: false };
  /** IDENTIFYs refused for coming too early within their rate-limit key's window. */
  identifyViolations = 0;
  /** Dispatches sent again to a client that already had them (chaos mode). */
  duplicatesSent = 0;
  /** Connections closed right after READY or RESUMED by {@link churnAfterReady}. */
  churnKills = 0;

  private readonly channelInfo = new Map<string, GatewayChannelInfoChannel[]>();

  private readonly options: Required<Omit<LocalGatewayOptions, 'sessionStartLimit' | 'resumeUrl' | 'chaos'>> & {
    resumeUrl?: string;
  };
  private readonly startLimit: LocalSessionStartLimit;
  private readonly sessions = new Map<string, LocalSession>();
  private readonly lastIdentifyByKey = new Map<number, number>();
  private readonly lastFullMemberRequest = new Map<string, number>();
  private readonly membersByGuild = new Map<string, APIGuildMember[]>();
  private readonly chaos: Required<LocalGatewayChaosOptions> | null;
  private readonly churnUntil = new Map<number, { until: number; code: number }>();
  private readonly nextReadyGuilds = new Map<number, unknown[]>();
  private readonly wss: WebSocketServer;
  private port = 0;
  private rewrite: DispatchRewrite | null = null;

  private constructor(
    private readonly server: Server,
    options: LocalGatewayOptions,
  ) {
    super();
    this.options = {
      token: options.token ?? 'local-gateway-token',
      heartbeatInterval: options.heartbeatInterval ?? 41_250,
      shards: options.shards ?? 1,
      identifyWindowMs: options.identifyWindowMs ?? 0,
      resumeUrl: options.resumeUrl,
      guilds: options.guilds ?? [],
      firstSequence: options.firstSequence ?? 1,
      allowedPrivilegedIntents: options.allowedPrivilegedIntents ?? PRIVILEGED_INTENTS,
      commandLimit: options.commandLimit ?? 120,
      commandWindowMs: options.commandWindowMs ?? 60_000,
      compressedFramesPerMessage: options.compressedFramesPerMessage ?? 1,
      membersPerGuild: options.membersPerGuild ?? 0,
      memberRequestCooldownMs: options.memberRequestCooldownMs ?? 30_000,
    };
    this.chaos = options.chaos
      ? {
          random: options.chaos.random ?? Math.random,
          replayOverlapChance: options.chaos.replayOverlapChance ?? 0.5,
          maxReplayOverlap: options.chaos.maxReplayOverlap ?? 20,
          resendChance: options.chaos.resendChance ?? 0.01,
        }
      : null;
    this.startLimit = {
      total: 1000,
      remaining: 1000,
      reset_after: 86_400_000,
      max_concurrency: 1,
      ...options.sessionStartLimit,
    };
    this.wss = new WebSocketServer({
      server,
      perMessageDeflate: false,
      verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number) => void) =>
        done(!(this.behaviour.refuseResume && this.isResumePath(info.req)), 503),
    });
    this.wss.on('connection', (ws, request) => this.onConnection(ws, request));
    server.on('request', (request, response) => this.onHttp(request, response));
  }

  /** Starts a gateway on 127.0.0.1 on a free port. */
  static async start(options: LocalGatewayOptions = {}): Promise<LocalGateway> {
    const server = createServer();
    const gateway = new LocalGateway(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    gateway.port = (server.address() as AddressInfo).port;
    return gateway;
  }

  /** WebSocket URL to connect to, e.g. `ws://127.0.0.1:40123`. */
  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Base of the REST API it serves, e.g. `http://127.0.0.1:40123/api`. */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  /** The token this gateway accepts. */
  get token(): string {
    return this.options.token;
  }

  /** The `resume_gateway_url` it sends in READY. */
  get resumeUrl(): string {
    return this.options.resumeUrl ?? `${this.url}/resume`;
  }

  /** Current `session_start_limit` (`remaining` goes down with each IDENTIFY). */
  get sessionStartLimit(): LocalSessionStartLimit {
    return { ...this.startLimit };
  }

  /**
   * The channels a Request Channel Info (op 43) for `guildId` answers with, in `CHANNEL_INFO` (each reply keeps only
   * the fields asked for). Without it, the reply lists no channel.
   */
  setChannelInfo(guildId: string, channels: GatewayChannelInfoChannel[]): void {
    this.channelInfo.set(guildId, channels.map((channel) => ({ ...channel })));
  }

  /** Frames with opcode `op`, optionally of one shard. */
  framesOf(op: number, shardId?: number): RecordedFrame[] {
    return this.frames.filter((f) => f.op === op && (shardId === undefined || f.shardId === shardId));
  }

  /** The newest open connection of a shard, if any. */
  connectionOf(shardId: number): LocalGatewayConnection | undefined {
    for (let i = this.connections.length - 1; i >= 0; i--) {
      const c = this.connections[i];
      if (c.shardId === shardId && c.open) return c;
    }
    return undefined;
  }

  /** The newest session id of a shard, if any. */
  sessionOf(shardId: number): string | undefined {
    let found: string | undefined;
    for (const session of this.sessions.values()) if (session.shardId === shardId) found = session.id;
    return found;
  }

  /**
   * Resolves with the first frame, from `fromIndex` on (default: only frames still to come), that matches.
   * Rejects after `timeoutMs`.
   */
  waitForFrame(
    predicate: (frame: RecordedFrame) => boolean,
    timeoutMs = 5_000,
    fromIndex = this.frames.length,
  ): Promise<RecordedFrame> {
    const earlier = this.frames.slice(fromIndex).find(predicate);
    if (earlier) return Promise.resolve(earlier);
    return this.waitForEvent<RecordedFrame>('frame', predicate, timeoutMs, 'frame');
  }

  /** Resolves with the next connection that matches (any, by default). */
  waitForConnection(
    predicate: (connection: LocalGatewayConnection) => boolean = () => true,
    timeoutMs = 5_000,
  ): Promise<LocalGatewayConnection> {
    return this.waitForEvent<LocalGatewayConnection>('connection', predicate, timeoutMs, 'connection');
  }

  /** Resolves when a shard's session is ready: READY or RESUMED has been sent to it. */
  waitForReady(shardId: number, timeoutMs = 5_000): Promise<string> {
    return this.waitForEvent<{ shardId: number; sessionId: string }>(
      'ready',
      (event) => event.shardId === shardId,
      timeoutMs,
      `ready of shard ${shardId}`,
    ).then((event) => event.sessionId);
  }

  /**
   * Sends a dispatch to a shard's current session and returns its sequence number. When the session has no
   * connection at the moment, the event is kept and replayed on RESUME, as Discord does.
   */
  dispatch(shardId: number, t: string, d: unknown): number {
    const session = this.latestSession(shardId);
    if (!session) throw new Error(`Local gateway: shard ${shardId} has no session`);
    return this.sendDispatch(session, t, d);
  }

  /**
   * Like {@link dispatch}, with the data given as JSON text, sent as it is: for data `JSON.stringify` cannot
   * produce (nesting deeper than its stack allows) or text that is not JSON at all.
   */
  dispatchJson(shardId: number, t: string, json: string): number {
    const session = this.latestSession(shardId);
    if (!session) throw new Error(`Local gateway: shard ${shardId} has no session`);
    const s = ++session.seq;
    this.sendLogged(session, s, t, `{"op":${GatewayOpcodes.Dispatch},"t":${JSON.stringify(t)},"s":${s},"d":${json}}`);
    return s;
  }

  /** Sends op 7 Reconnect to a shard. */
  reconnect(shardId: number): void {
    this.requireConnection(shardId).send({ op: GatewayOpcodes.Reconnect, d: null });
  }

  /** Sends op 9 Invalid Session; a non-resumable one also forgets the session. */
  invalidateSession(shardId: number, resumable = false): void {
    const connection = this.requireConnection(shardId);
    if (!resumable && connection.sessionId) this.sessions.delete(connection.sessionId);
    connection.send({ op: GatewayOpcodes.InvalidSession, d: resumable });
  }

  /** Closes a shard's connection with a close frame carrying `code`. */
  closeShard(shardId: number, code: number, reason = ''): void {
    this.requireConnection(shardId).close(code, reason);
  }

  /** Drops a shard's TCP connection without a close frame. */
  dropShard(shardId: number): void {
    this.requireConnection(shardId).drop();
  }

  /** Asks a shard for an immediate heartbeat (op 1). */
  requestHeartbeat(shardId: number): void {
    this.requireConnection(shardId).send({ op: GatewayOpcodes.Heartbeat, d: null });
  }

  /** Stops or restarts acknowledging a shard's heartbeats, on its current connection. */
  setAcks(shardId: number, enabled: boolean): void {
    this.requireConnection(shardId).acks = enabled;
  }

  /** Sends bytes that are not a valid zlib stream (a deflate block of the reserved type 3, then the flush suffix). */
  sendCorruptZlib(shardId: number): void {
    this.requireConnection(shardId).sendBytes(Buffer.from([0x06, 0x34, 0x56, 0x78, 0x9a, 0x00, 0x00, 0xff, 0xff]));
  }

  /** Sends a message that is not valid JSON (compressed when the client asked for compression). */
  sendInvalidJson(shardId: number): void {
    this.requireConnection(shardId).sendText('{"op":0,"t":"MESSAGE_CREATE",');
  }

  /**
   * Slow server reads: stops reading a shard's current connection for `ms` (its frames, heartbeats included, wait
   * unread in the socket; what the server sends still goes out), then reads on.
   */
  slowReads(shardId: number, ms: number): void {
    this.requireConnection(shardId).pauseReads(ms);
  }

  /**
   * Rewrites the data of every dispatch sent from now on (READY, GUILD_CREATE, answers to member and soundboard
   * requests, {@link dispatch}): what `rewrite` returns is sent instead, as it is (any JSON value, however
   * malformed). `null` sends them unchanged again.
   */
  rewriteDispatches(rewrite: DispatchRewrite | null): void {
    this.rewrite = rewrite;
  }

  /**
   * Churn after READY: closes the shard's connection with `code` now, and for `durationMs` closes every connection
   * of the shard with `code` right after its READY or RESUMED went out, as a gateway whose sessions die at once
   * would. A client that retries without backing off then reconnects in a tight loop.
   */
  churnAfterReady(shardId: number, durationMs: number, code = 4000): void {
    this.churnUntil.set(shardId, { until: Date.now() + durationMs, code });
    this.requireConnection(shardId).close(code, 'churn');
  }

  /** The next READY of a shard lists `guilds` as they are instead of its unavailable guilds (malformed READYs). */
  malformNextReady(shardId: number, guilds: unknown[]): void {
    this.nextReadyGuilds.set(shardId, guilds);
  }

  /** Sends any payload to a shard as it is. */
  sendPayload(shardId: number, payload: object): void {
    this.requireConnection(shardId).send(payload);
  }

  /** Closes every connection and the server. */
  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  // ---- internals ----------------------------------------------------------------------------------

  private waitForEvent<T>(event: string, predicate: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const listener = (value: T) => {
        if (!predicate(value)) return;
        clearTimeout(timer);
        this.off(event, listener);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.off(event, listener);
        reject(new Error(`Local gateway: no matching ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on(event, listener);
    });
  }

  private isResumePath(request: IncomingMessage): boolean {
    return new URL(request.url ?? '/', this.url.replace('ws', 'http')).pathname.replace(/\/+$/, '') === '/resume';
  }

  private requireConnection(shardId: number): LocalGatewayConnection {
    const connection = this.connectionOf(shardId);
    if (!connection) throw new Error(`Local gateway: shard ${shardId} has no open connection`);
    return connection;
  }

  private latestSession(shardId: number): LocalSession | undefined {
    const id = this.sessionOf(shardId);
    return id ? this.sessions.get(id) : undefined;
  }

  private onHttp(request: IncomingMessage, response: ServerResponse): void {
    const path = new URL(request.url ?? '/', this.url.replace('ws', 'http')).pathname;
    const match = /^\/api(?:\/v\d+)?\/gateway(\/bot)?\/?$/.exec(path);
    const reply = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (request.method !== 'GET' || !match) return reply(404, { message: '404: Not Found', code: 0 });
    if (!match[1]) return reply(200, { url: this.url });
    const auth = request.headers.authorization ?? '';
    if (auth !== `Bot ${this.options.token}`) return reply(401, { message: '401: Unauthorized', code: 0 });
    reply(200, { url: this.url, shards: this.options.shards, session_start_limit: this.sessionStartLimit });
  }

  private onConnection(ws: WebSocket, request: IncomingMessage): void {
    const url = new URL(request.url ?? '/', this.url.replace('ws', 'http'));
    const connection = new LocalGatewayConnection(
      this.connections.length + 1,
      ws,
      url.pathname,
      url.searchParams,
      request.headers,
      this.options.compressedFramesPerMessage,
    );
    connection.remotePort = request.socket.remotePort ?? null;
    this.connections.push(connection);
    ws.on('message', (data: Buffer) => this.onClientFrame(connection, data));
    ws.on('close', (code) => this.onClientClose(connection, code));
    ws.on('error', () => undefined);
    if (url.searchParams.get('v') !== '10') {
      connection.close(GatewayCloseCodes.InvalidAPIVersion, 'Invalid API version');
    } else if (this.behaviour.dropAfterHello) {
      const socket = request.socket;
      socket.cork();
      connection.send({ op: GatewayOpcodes.Hello, d: { heartbeat_interval: this.options.heartbeatInterval } });
      connection.close(GatewayCloseCodes.UnknownError, 'Unknown error');
      process.nextTick(() => socket.uncork());
    } else if (this.behaviour.sendHello) {
      connection.send({ op: GatewayOpcodes.Hello, d: { heartbeat_interval: this.options.heartbeatInterval } });
    }
    this.emit('connection', connection);
  }

  private onClientClose(connection: LocalGatewayConnection, code: number): void {
    connection.closeCode = code;
    connection.closedAt = Date.now();
    const session = connection.sessionId ? this.sessions.get(connection.sessionId) : undefined;
    if (!session || session.connection !== connection) return;
    session.connection = null;
    if (!connection.closedByServer && (code === 1000 || code === 1001)) this.sessions.delete(session.id);
  }

  private onClientFrame(connection: LocalGatewayConnection, data: Buffer): void {
    const now = Date.now();
    connection.receivedAt.push(now);
    while (connection.receivedAt.length > 0 && connection.receivedAt[0] <= now - this.options.commandWindowMs) {
      connection.receivedAt.shift();
    }
    if (data.length > MAX_OUTGOING_PAYLOAD_BYTES) return connection.close(GatewayCloseCodes.DecodeError, 'Payload too large');
    let payload: { op?: unknown; d?: any };
    try {
      payload = JSON.parse(data.toString());
    } catch {
      return connection.close(GatewayCloseCodes.DecodeError, 'Error while decoding payload');
    }
    const op = payload?.op;
    if (typeof op !== 'number' || !CLIENT_OPCODES.has(op)) {
      return connection.close(GatewayCloseCodes.UnknownOpcode, 'Unknown opcode');
    }
    const frame: RecordedFrame = { connectionId: connection.id, shardId: connection.shardId, op, d: payload.d, at: now, bytes: data.length };
    if (op === GatewayOpcodes.Identify || op === GatewayOpcodes.Resume) {
      const shard = op === GatewayOpcodes.Identify ? payload.d?.shard : undefined;
      frame.shardId = Array.isArray(shard) ? shard[0] : op === GatewayOpcodes.Resume ? this.sessions.get(payload.d?.session_id)?.shardId ?? null : 0;
    }
    this.frames.push(frame);
    connection.frames.push(frame);
    this.emit('frame', frame, connection);
    if (connection.receivedAt.length > this.options.commandLimit) {
      return connection.close(GatewayCloseCodes.RateLimited, 'You are being rate limited.');
    }
    switch (op) {
      case GatewayOpcodes.Heartbeat:
        if (this.behaviour.acks && connection.acks) {
          const sequence = connection.sessionId ? this.sessions.get(connection.sessionId)?.seq ?? null : null;
          const beat = typeof payload.d === 'number' ? payload.d : null;
          connection.send({ op: GatewayOpcodes.HeartbeatAck }, () => {
            connection.lastAckSequence = sequence;
            connection.lastAckedHeartbeat = beat;
          });
        }
        return;
      case GatewayOpcodes.Identify:
        return this.onIdentify(connection, payload.d);
      case GatewayOpcodes.Resume:
        return this.onResume(connection, payload.d);
      default:
        if (!connection.handshakeDone) connection.close(GatewayCloseCodes.NotAuthenticated, 'Not authenticated.');
        else if (op === GatewayOpcodes.RequestGuildMembers) this.onRequestGuildMembers(connection, payload.d);
        else if (op === GatewayOpcodes.RequestSoundboardSounds) this.onRequestSoundboardSounds(connection, payload.d);
        else if (op === GatewayOpcodes.RequestChannelInfo) this.onRequestChannelInfo(connection, payload.d);
    }
  }

  private tokenMatches(token: unknown): boolean {
    return typeof token === 'string' && token.replace(/^Bot /, '') === this.options.token;
  }

  private onIdentify(connection: LocalGatewayConnection, d: any): void {
    if (connection.handshakeDone) return connection.close(GatewayCloseCodes.AlreadyAuthenticated, 'Already authenticated.');
    if (!this.tokenMatches(d?.token)) return connection.close(GatewayCloseCodes.AuthenticationFailed, 'Authentication failed.');
    const props = d.properties;
    if (typeof props?.os !== 'string' || typeof props.browser !== 'string' || typeof props.device !== 'string') {
      return connection.close(GatewayCloseCodes.DecodeError, 'Error while decoding payload.');
    }
    if (d.large_threshold !== undefined && (!Number.isInteger(d.large_threshold) || d.large_threshold < 50 || d.large_threshold > 250)) {
      return connection.close(GatewayCloseCodes.DecodeError, 'Error while decoding payload.');
    }
    const intents = d.intents;
    if (!Number.isInteger(intents) || intents < 0 || (intents & ~KNOWN_INTENTS) !== 0) {
      return connection.close(GatewayCloseCodes.InvalidIntents, 'Invalid intent(s).');
    }
    if ((intents & PRIVILEGED_INTENTS & ~this.options.allowedPrivilegedIntents) !== 0) {
      return connection.close(GatewayCloseCodes.DisallowedIntents, 'Disallowed intent(s).');
    }
    const [shardId, total] = Array.isArray(d.shard) ? d.shard : [0, 1];
    if (!Number.isInteger(shardId) || !Number.isInteger(total) || total < 1 || shardId < 0 || shardId >= total) {
      return connection.close(GatewayCloseCodes.InvalidShard, 'Invalid shard.');
    }
    connection.shardId = shardId;
    // Payload compression never combines with transport compression.
    connection.payloadCompression = d.compress === true && !connection.transportCompression;
    if (this.options.identifyWindowMs > 0) {
      const key = shardId % this.startLimit.max_concurrency;
      const last = this.lastIdentifyByKey.get(key);
      const now = Date.now();
      if (last !== undefined && now - last < this.options.identifyWindowMs) {
        this.identifyViolations++;
        return connection.send({ op: GatewayOpcodes.InvalidSession, d: false });
      }
      this.lastIdentifyByKey.set(key, now);
    }
    this.startLimit.remaining = Math.max(0, this.startLimit.remaining - 1);
    connection.handshakeDone = true;
    if (!this.behaviour.answerHandshake) return;
    const session: LocalSession = {
      id: randomBytes(16).toString('hex'),
      shardId,
      total,
      seq: this.options.firstSequence - 1,
      log: [],
      connection,
    };
    this.sessions.set(session.id, session);
    connection.sessionId = session.id;
    const guilds = this.options.guilds.filter((id) => Number((BigInt(id) >> 22n) % BigInt(total)) === shardId);
    const readyGuilds = this.nextReadyGuilds.get(shardId) ?? guilds.map((id) => ({ id, unavailable: true }));
    this.nextReadyGuilds.delete(shardId);
    this.sendDispatch(session, 'READY', {
      v: 10,
      user: LOCAL_BOT_USER,
      guilds: readyGuilds,
      session_id: session.id,
      resume_gateway_url: this.resumeUrl,
      shard: [shardId, total],
      application: { id: LOCAL_BOT_USER.id, flags: 0 },
    });
    this.emit('ready', { shardId, sessionId: session.id });
    const churnAfterGuilds = this.churnDue(shardId);
    for (const id of guilds) {
      this.sendDispatch(session, 'GUILD_CREATE', {
        id,
        name: `Guild ${id}`,
        unavailable: false,
        member_count: 1,
        channels: [],
        roles: [],
        members: [],
        presences: [],
        voice_states: [],
        threads: [],
        stage_instances: [],
        guild_scheduled_events: [],
        soundboard_sounds: [],
        emojis: [],
        stickers: [],
        features: [],
        large: false,
        joined_at: new Date(0).toISOString(),
      });
    }
    if (churnAfterGuilds !== null) this.churnKill(connection, churnAfterGuilds);
  }

  private onResume(connection: LocalGatewayConnection, d: any): void {
    if (connection.handshakeDone) return connection.close(GatewayCloseCodes.AlreadyAuthenticated, 'Already authenticated.');
    if (!this.tokenMatches(d?.token)) return connection.close(GatewayCloseCodes.AuthenticationFailed, 'Authentication failed.');
    const session = typeof d.session_id === 'string' ? this.sessions.get(d.session_id) : undefined;
    if (!session) return connection.send({ op: GatewayOpcodes.InvalidSession, d: false });
    const seq = d.seq;
    if (!Number.isInteger(seq) || seq > session.seq) return connection.close(GatewayCloseCodes.InvalidSeq, 'Invalid seq.');
    if (session.connection && session.connection !== connection) session.connection.close(GatewayCloseCodes.SessionTimedOut);
    connection.shardId = session.shardId;
    connection.sessionId = session.id;
    connection.handshakeDone = true;
    if (!this.behaviour.answerHandshake) return;
    session.connection = connection;
    let from = seq;
    if (this.chaos && this.chaos.random() < this.chaos.replayOverlapChance) {
      from = seq - 1 - Math.floor(this.chaos.random() * this.chaos.maxReplayOverlap);
    }
    for (const entry of session.log) {
      if (entry.s <= from) continue;
      connection.sendText(entry.text);
      if (entry.s <= seq) this.countDuplicate(session, entry, 'replay-overlap');
    }
    this.sendDispatch(session, 'RESUMED', null);
    this.emit('ready', { shardId: session.shardId, sessionId: session.id });
    const churn = this.churnDue(session.shardId);
    if (churn !== null) this.churnKill(connection, churn);
  }

  /** The close code to churn a shard's new session with, or null when no churn is under way. */
  private churnDue(shardId: number): number | null {
    const churn = this.churnUntil.get(shardId);
    if (!churn) return null;
    if (Date.now() < churn.until) return churn.code;
    this.churnUntil.delete(shardId);
    return null;
  }

  /** Closes right after READY/RESUMED (and what came before) really went out. */
  private churnKill(connection: LocalGatewayConnection, code: number): void {
    this.churnKills++;
    connection.whenSent(() => connection.close(code, 'churn'));
  }

  private countDuplicate(session: LocalSession, entry: { s: number; t: string }, cause: LocalDuplicateDispatch['cause']): void {
    this.duplicatesSent++;
    const duplicate: LocalDuplicateDispatch = { shardId: session.shardId, sessionId: session.id, s: entry.s, t: entry.t, cause };
    this.emit('duplicate', duplicate);
  }

  /**
   * Op 8: answers GUILD_MEMBERS_CHUNKs of at most 1000 members (`query` is a username prefix, `user_ids` fills
   * `not_found`), or RATE_LIMITED for a full-list request that comes within `memberRequestCooldownMs` of the last one.
   */
  private onRequestGuildMembers(connection: LocalGatewayConnection, d: any): void {
    const session = connection.sessionId ? this.sessions.get(connection.sessionId) : undefined;
    if (!session) return;
    const guildId = d?.guild_id;
    const byIds = d?.user_ids !== undefined;
    if (typeof guildId !== 'string' || (!byIds && (typeof d.query !== 'string' || !Number.isInteger(d.limit) || d.limit < 0))) {
      return connection.close(GatewayCloseCodes.UnknownOpcode, 'Invalid payload for opcode 8.');
    }
    const nonce: string | undefined = typeof d.nonce === 'string' && Buffer.byteLength(d.nonce) <= 32 ? d.nonce : undefined;
    if (!byIds && d.query === '' && d.limit === 0) {
      const now = Date.now();
      const last = this.lastFullMemberRequest.get(guildId);
      if (last !== undefined && now - last < this.options.memberRequestCooldownMs) {
        const limited: GatewayRateLimitedRequestGuildMembersDispatchData = {
          opcode: GatewayOpcodes.RequestGuildMembers,
          retry_after: (last + this.options.memberRequestCooldownMs - now) / 1000,
          meta: nonce === undefined ? { guild_id: guildId } : { guild_id: guildId, nonce },
        };
        this.sendDispatch(session, 'RATE_LIMITED', limited);
        return;
      }
      this.lastFullMemberRequest.set(guildId, now);
    }
    let members = this.membersByGuild.get(guildId);
    if (!members) this.membersByGuild.set(guildId, (members = createGuildMembers(guildId, this.options.membersPerGuild)));
    let notFound: string[] | undefined;
    if (byIds) {
      const ids = [...new Set<string>((Array.isArray(d.user_ids) ? d.user_ids : [d.user_ids]).map(String))];
      const byId = new Map(members.map((m) => [m.user.id, m]));
      members = ids.flatMap((id) => byId.get(id) ?? []);
      notFound = ids.filter((id) => !byId.has(id));
    } else if (d.query !== '' || d.limit > 0) {
      const prefix = d.query.toLowerCase();
      members = members.filter((m) => m.user.username.toLowerCase().startsWith(prefix)).slice(0, Math.min(d.limit || 100, 100));
    }
    const chunkCount = Math.max(1, Math.ceil(members.length / 1000));
    for (let i = 0; i < chunkCount; i++) {
      const chunk: GatewayGuildMembersChunkDispatchData = {
        guild_id: guildId,
        members: members.slice(i * 1000, (i + 1) * 1000),
        chunk_index: i,
        chunk_count: chunkCount,
      };
      if (notFound) chunk.not_found = notFound;
      if (nonce !== undefined) chunk.nonce = nonce;
      this.sendDispatch(session, 'GUILD_MEMBERS_CHUNK', chunk);
    }
  }

  /** Op 31: one SOUNDBOARD_SOUNDS, with no sounds, per requested guild. */
  private onRequestSoundboardSounds(connection: LocalGatewayConnection, d: any): void {
    const session = connection.sessionId ? this.sessions.get(connection.sessionId) : undefined;
    if (!session) return;
    const guildIds: unknown = d?.guild_ids;
    if (!Array.isArray(guildIds) || !guildIds.every((id) => typeof id === 'string')) {
      return connection.close(GatewayCloseCodes.UnknownOpcode, 'Invalid payload for opcode 31.');
    }
    for (const guildId of new Set<string>(guildIds)) {
      const sounds: GatewaySoundboardSoundsDispatchData = { guild_id: guildId, soundboard_sounds: [] };
      this.sendDispatch(session, 'SOUNDBOARD_SOUNDS', sounds);
    }
  }

  /** Op 43: one CHANNEL_INFO for the guild, with the channels {@link setChannelInfo} gave (none by default). */
  private onRequestChannelInfo(connection: LocalGatewayConnection, d: any): void {
    const session = connection.sessionId ? this.sessions.get(connection.sessionId) : undefined;
    if (!session) return;
    const fields: unknown = d?.fields;
    if (typeof d?.guild_id !== 'string' || !Array.isArray(fields) || !fields.every((f) => typeof f === 'string')) {
      return connection.close(GatewayCloseCodes.UnknownOpcode, 'Invalid payload for opcode 43.');
    }
    const channels = (this.channelInfo.get(d.guild_id) ?? []).map((channel) => {
      const reply: GatewayChannelInfoChannel = { id: channel.id };
      if (fields.includes('status') && channel.status !== undefined) reply.status = channel.status;
      if (fields.includes('voice_start_time') && channel.voice_start_time !== undefined) reply.voice_start_time = channel.voice_start_time;
      return reply;
    });
    const info: GatewayChannelInfoDispatchData = { guild_id: d.guild_id, channels };
    this.sendDispatch(session, 'CHANNEL_INFO', info);
  }

  private sendDispatch(session: LocalSession, t: string, d: unknown): number {
    if (this.rewrite) d = this.rewrite(t, d, session.shardId);
    const s = ++session.seq;
    this.sendLogged(session, s, t, JSON.stringify({ op: GatewayOpcodes.Dispatch, t, s, d }));
    return s;
  }

  /**
   * Keeps dispatch `s` for replays on RESUME and sends it to the session's connection, if any; in chaos mode it
   * sometimes sends a recent dispatch again.
   */
  private sendLogged(session: LocalSession, s: number, t: string, text: string): void {
    const entry = { s, t, text };
    session.log.push(entry);
    if (session.log.length > 10_000) session.log.shift();
    const connection = session.connection;
    if (!connection?.open) return;
    connection.sendText(text);
    if (this.chaos && this.chaos.random() < this.chaos.resendChance) {
      const recent = session.log.slice(-10);
      const again = recent[Math.floor(this.chaos.random() * recent.length)];
      connection.sendText(again.text);
      this.countDuplicate(session, again, 'resend');
    }
  }
}
