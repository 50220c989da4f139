import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Transform } from 'node:stream';
import { constants, createDeflate, deflateRawSync } from 'node:zlib';
import WebSocket, { WebSocketServer } from 'ws';
import { planOf, shardEventTexts, type CorpusSpec, type ShardPlan } from './corpus';
import { IdentifyLimitCheck } from './identify-limit-check';
import { NativeSync } from './native-sync';
import { nodeZstd, type NodeZstd } from './node-zstd';

/**
 * The benchmark's load server: just enough gateway v10 for every client, run in its own process so that its CPU
 * is not counted against the clients.
 *
 * - HELLO on connect; IDENTIFY (not checked beyond its `shard`) gets READY with `session_id`, `resume_gateway_url`
 *   and the shard echoed. Once every shard of the corpus has identified, each connection streams its shard's events
 *   as fast as the socket drains (one batch of at most ~{@link BATCH_BYTES} in flight per connection), then closes
 *   after {@link LINGER_MS}. Heartbeats get op 11; RESUME gets op 9 `false`.
 * - `compress=zlib-stream`: each shard's whole sequence [HELLO, READY, events...] is compressed ahead of time with
 *   ONE deflate context, Z_SYNC_FLUSH after each message, and every connection replays those chunks (each connection
 *   starts a fresh inflate context, so the replay is valid). About every {@link FULL_FLUSH_BYTES} of JSON, and after
 *   HELLO, READY and the last event, the flush is Z_FULL_FLUSH instead: the compressor forgets its history there, so
 *   an op 11 compressed on its own can be spliced in at such a point without breaking the stream.
 * - `compress=zstd-stream` (only when started with {@link LoadServerConfig.zstd}, on a Node with zstd): the same,
 *   with ONE zstd context per shard sequence and ZSTD_e_flush after each message, so that each message's bytes
 *   decode on their own after the previous ones (checked once built). At its reset points (after HELLO, READY, the
 *   last event and about every {@link ZSTD_RESET_BYTES} of JSON) the zstd frame ends (ZSTD_e_end) and the next
 *   message starts a new one, so that an op 11 compressed as a frame of its own can be spliced in there.
 * - Without `compress`, the same messages go out as JSON text frames.
 * - `GET /api/v10/gateway/bot` answers `url`, `shards` and `session_start_limit` (`max_concurrency` 16).
 * - With `identifyWindowMs`, IDENTIFYs are checked against Discord's identify rate limit with that window
 *   ({@link IdentifyLimitCheck}); `GET /bench/identifies` answers what was seen since the previous such request
 *   ({@link IdentifyStats}) and starts counting afresh.
 *
 * Configured by the `BENCH_SERVER` environment variable (JSON {@link LoadServerConfig}); prints one line
 * `BENCH_SERVER_READY {...}` ({@link LoadServerReady}) on stdout once the corpus is built, and stops on SIGTERM,
 * when its stdin closes, or after `maxLifetimeMs`.
 */

/** Configuration of one load server process. */
export interface LoadServerConfig extends CorpusSpec {
  /** HELLO's `heartbeat_interval`. @defaultValue 41250 */
  heartbeatIntervalMs?: number;
  /** The server exits after this long whatever happens. @defaultValue 3 h */
  maxLifetimeMs?: number;
  /** Identify window to check IDENTIFYs against, ms. @defaultValue no check */
  identifyWindowMs?: number;
  /** Also serve `compress=zstd-stream` (this Node must have zstd). @defaultValue false */
  zstd?: boolean;
}

/** What the server prints once it is ready. */
export interface LoadServerReady {
  port: number;
  plan: ShardPlan[];
  buildMs: number;
  /** JSON bytes of all shard streams. */
  textBytes: number;
  /** zlib-stream bytes of all shard streams. */
  zlibBytes: number;
  /** zstd-stream bytes of all shard streams, when served. */
  zstdBytes: number | null;
  /** Per event name: events and their JSON bytes, all shards (HELLO and READY not included). */
  eventBytes: Record<string, { events: number; bytes: number }>;
}

/** Line prefix of the ready message. */
export const READY_PREFIX = 'BENCH_SERVER_READY ';

const BATCH_BYTES = 256 * 1024;
const FULL_FLUSH_BYTES = 256 * 1024;
/**
 * JSON between two zstd frame ends. zstd's window is far larger than deflate's 32 KB, so its resets are rarer: at
 * 4 MB the messages corpus comes out within 0.2 % of one frame for the whole stream (at 256 KB, 2.3 % larger).
 */
const ZSTD_RESET_BYTES = 4 * 1024 * 1024;
const LINGER_MS = 10_000;
/** `max_concurrency` of `GET /gateway/bot`, and of the identify check. */
export const MAX_CONCURRENCY = 16;
const BOT_USER = { id: '1000000000000000001', username: 'bench-bot', discriminator: '0', global_name: null, avatar: null, bot: true };

/** WebSocket frames stored back to back in one buffer, addressed by index. Server frames are not masked. */
class Frames {
  private readonly parts: Buffer[] = [];
  private readonly ends: number[] = [];
  private readonly headers: number[] = [];
  private data: Buffer | null = null;
  private offsets: Float64Array | null = null;
  private headerBytes: Uint8Array | null = null;
  private total = 0;

  constructor(private readonly binary: boolean) {}

  /** Appends one message as one frame. */
  push(payload: Buffer): void {
    const header = frameHeader(payload.length, this.binary);
    this.parts.push(header, payload);
    this.total += header.length + payload.length;
    this.ends.push(this.total);
    this.headers.push(header.length);
  }

  seal(): this {
    this.data = Buffer.concat(this.parts, this.total);
    this.offsets = Float64Array.from([0, ...this.ends]);
    this.headerBytes = Uint8Array.from(this.headers);
    this.parts.length = this.ends.length = this.headers.length = 0;
    return this;
  }

  get count(): number {
    return this.offsets!.length - 1;
  }

  get bytes(): number {
    return this.data!.length;
  }

  /** Frames `from` (inclusive) to `to` (exclusive), as one buffer. */
  range(from: number, to: number): Buffer {
    return this.data!.subarray(this.offsets![from], this.offsets![to]);
  }

  /** Bytes of frame `index`, header included. */
  size(index: number): number {
    return this.offsets![index + 1] - this.offsets![index];
  }

  /** The payload of frame `index`. */
  payload(index: number): Buffer {
    return this.data!.subarray(this.offsets![index] + this.headerBytes![index], this.offsets![index + 1]);
  }
}

function frameHeader(length: number, binary: boolean): Buffer {
  const opcode = binary ? 0x82 : 0x81;
  if (length < 126) return Buffer.from([opcode, length]);
  if (length < 65_536) return Buffer.from([opcode, 126, length >> 8, length & 0xff]);
  const header = Buffer.alloc(10);
  header[0] = opcode;
  header[1] = 127;
  header.writeBigUInt64BE(BigInt(length), 2);
  return header;
}

function frame(payload: Buffer, binary: boolean): Buffer {
  return Buffer.concat([frameHeader(payload.length, binary), payload]);
}

/** What a connection is sent: JSON text, or the stream compressed as its URL's `compress` asks. */
type Encoding = 'text' | 'zlib' | 'zstd';

/** One compressed form of a shard's sequence: one frame per message. */
interface Compressed {
  frames: Frames;
  /** `boundary[i]` is 1 when the compressor was reset after message `i` (Z_FULL_FLUSH, or the end of a zstd frame). */
  boundary: Uint8Array;
}

/** One shard's sequence [HELLO, READY, events...], as JSON text frames and compressed. */
interface ShardStream {
  text: Frames;
  zlib: Compressed;
  /** Only when the server was started with {@link LoadServerConfig.zstd}. */
  zstd: Compressed | null;
}

/** A compressing `node:zlib` stream: `flush(kind)` ends what was written with that flush. */
type Compressor = Transform & { flush(kind: number, callback: () => void): void };

/**
 * Compresses the texts with one compression context, one message per text: written with the stream's own flush
 * (Z_SYNC_FLUSH, ZSTD_e_flush), and flushed with `resetFlush` after HELLO, READY, the last message and about
 * every `resetBytes` of JSON.
 */
async function compress(text: Frames, compressor: Compressor, resetFlush: number, resetBytes: number): Promise<Compressed> {
  let output: Buffer[] = [];
  compressor.on('data', (chunk: Buffer) => output.push(chunk));
  const failed = new Promise<never>((_, reject) => compressor.once('error', reject));
  const step = (run: (done: (error?: Error | null) => void) => void) =>
    Promise.race([failed, new Promise<void>((resolve, reject) => run((error) => (error ? reject(error) : resolve())))]);
  const frames = new Frames(true);
  const boundary = new Uint8Array(text.count);
  let sinceReset = 0;
  for (let i = 0; i < text.count; i++) {
    const input = text.payload(i);
    await step((done) => compressor.write(input, done));
    sinceReset += input.length;
    if (i <= 1 || i === text.count - 1 || sinceReset >= resetBytes) {
      await step((done) => compressor.flush(resetFlush, () => done()));
      boundary[i] = 1;
      sinceReset = 0;
    }
    frames.push(output.length === 1 ? output[0] : Buffer.concat(output));
    output = [];
  }
  compressor.destroy();
  return { frames: frames.seal(), boundary };
}

/** Checks that each zstd message decompresses, after the previous ones, to exactly its own text. */
function checkZstd(text: Frames, zstd: Compressed, api: NodeZstd): void {
  const decoder = api.createZstdDecompress();
  const decompress = new NativeSync(decoder, api.constants.ZSTD_e_continue);
  for (let i = 0; i < text.count; i++) {
    const produced = decompress.run(zstd.frames.payload(i));
    if (!decompress.output.subarray(0, produced).equals(text.payload(i))) throw new Error(`zstd-stream message ${i} does not decompress to its own text`);
  }
  decoder.close();
}

/** A payload sent on its own, framed in each encoding; compressed on its own to be spliced in at a reset point. */
interface Spliced {
  text: Buffer;
  zlib: Buffer;
  /** A whole zstd frame; null on a Node without zstd. */
  zstd: Buffer | null;
}

function splice(payload: object): Spliced {
  const text = Buffer.from(JSON.stringify(payload));
  const zstd = nodeZstd();
  return {
    text: frame(text, false),
    zlib: frame(deflateRawSync(text, { finishFlush: constants.Z_FULL_FLUSH }), true),
    zstd: zstd ? frame(zstd.zstdCompressSync(text), true) : null,
  };
}

const HEARTBEAT_ACK = splice({ op: 11, d: null });
const INVALID_SESSION = splice({ op: 9, d: false });

/**
 * One client connection. `ws` does the handshake, reads what the client sends and closes; what the server sends
 * is written to the socket directly as ready-made frames, many per write, which keeps the server's per-message
 * cost far below any client's.
 */
class Connection {
  shardId: number | null = null;
  private stream: ShardStream | null = null;
  private next = 1;
  private atReset = true;
  private readonly pending: Buffer[] = [];
  private lingerTimer: NodeJS.Timeout | null = null;
  private readonly resume = () => this.pump();

  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    private readonly encoding: Encoding,
    hello: Buffer,
  ) {
    this.write(hello);
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN && !this.socket.destroyed;
  }

  /** IDENTIFY accepted: sends READY (message 1 of the shard's stream). */
  identified(shardId: number, stream: ShardStream): void {
    this.shardId = shardId;
    this.stream = stream;
    this.next = 2;
    this.write(this.framesOf(stream).range(1, 2));
    this.atReset = true;
  }

  /** Sends a payload compressed on its own: now when the stream is at a reset point, else at the next one. */
  splice(payload: Spliced): void {
    if (this.encoding === 'text') this.write(payload.text);
    else if (this.atReset) this.write(payload[this.encoding]!);
    else this.pending.push(payload[this.encoding]!);
  }

  /** Sends the shard's events as fast as the socket drains: one batch of frames in flight at a time. */
  pump(): void {
    const stream = this.stream;
    if (!stream) return;
    const frames = this.framesOf(stream);
    const boundary = this.encoding === 'text' ? null : stream[this.encoding]!.boundary;
    while (this.next < frames.count) {
      if (!this.open) return;
      const from = this.next;
      let to = from;
      let bytes = 0;
      // A batch ends early at a reset point when an op 11 is waiting to be spliced in.
      while (to < frames.count && bytes < BATCH_BYTES) {
        bytes += frames.size(to);
        to++;
        if (this.pending.length > 0 && boundary?.[to - 1] === 1) break;
      }
      this.next = to;
      const drained = this.write(frames.range(from, to));
      this.atReset = boundary === null || boundary[to - 1] === 1;
      if (this.atReset) for (const chunk of this.pending.splice(0)) this.write(chunk);
      if (!drained) {
        this.socket.once('drain', this.resume);
        return;
      }
    }
    if (frames.count > 2 && !this.lingerTimer) {
      this.lingerTimer = setTimeout(() => {
        if (this.open) this.ws.close(1000, 'stream complete');
      }, LINGER_MS);
    }
  }

  dispose(): void {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    this.stream = null;
    this.socket.off('drain', this.resume);
  }

  private framesOf(stream: ShardStream): Frames {
    return this.encoding === 'text' ? stream.text : stream[this.encoding]!.frames;
  }

  /** Writes frames; false when the socket's buffer is full (wait for 'drain'). */
  private write(frames: Buffer): boolean {
    if (!this.open) return false;
    return this.socket.write(frames);
  }
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.BENCH_SERVER ?? '{}') as LoadServerConfig;
  const spec: CorpusSpec = { scenario: config.scenario, events: config.events, shards: config.shards };
  if (!spec.scenario || !Number.isInteger(spec.events) || !Number.isInteger(spec.shards) || spec.shards < 1) {
    throw new Error('BENCH_SERVER must hold { scenario, events, shards }');
  }
  const lifetime = setTimeout(() => process.exit(3), config.maxLifetimeMs ?? 3 * 3_600_000);
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
  process.on('SIGTERM', () => process.exit(0));

  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `ws://127.0.0.1:${port}`;

  const zstd = config.zstd ? nodeZstd() : null;
  if (config.zstd && !zstd) throw new Error(`zstd-stream asked for, but this Node (${process.version}) has no zstd in node:zlib (22.15 or later has)`);
  const started = performance.now();
  const plan = planOf(spec);
  const eventBytes: LoadServerReady['eventBytes'] = {};
  const hello = Buffer.from(JSON.stringify({ op: 10, d: { heartbeat_interval: config.heartbeatIntervalMs ?? 41_250 }, s: null, t: null }));
  const streams: ShardStream[] = [];
  for (let shardId = 0; shardId < spec.shards; shardId++) {
    const text = new Frames(false);
    text.push(hello);
    const ready = {
      v: 10,
      user: BOT_USER,
      guilds: [],
      session_id: `bench-session-${shardId}`,
      resume_gateway_url: `${url}/resume`,
      shard: [shardId, spec.shards],
      application: { id: BOT_USER.id, flags: 0 },
    };
    text.push(Buffer.from(JSON.stringify({ op: 0, t: 'READY', s: 1, d: ready })));
    for (const { t, text: json } of shardEventTexts(spec, shardId)) {
      const bytes = Buffer.from(json);
      text.push(bytes);
      const seen = (eventBytes[t] ??= { events: 0, bytes: 0 });
      seen.events++;
      seen.bytes += bytes.length;
    }
    text.seal();
    const zlib = await compress(text, createDeflate({ flush: constants.Z_SYNC_FLUSH }), constants.Z_FULL_FLUSH, FULL_FLUSH_BYTES);
    let zstdStream: Compressed | null = null;
    if (zstd) {
      zstdStream = await compress(text, zstd.createZstdCompress({ flush: zstd.constants.ZSTD_e_flush }), zstd.constants.ZSTD_e_end, ZSTD_RESET_BYTES);
      checkZstd(text, zstdStream, zstd);
    }
    streams.push({ text, zlib, zstd: zstdStream });
  }
  // Every context starts with the same HELLO, so its first chunk is the same for every shard.
  const helloFrames: Record<Encoding, Buffer | null> = {
    text: streams[0].text.range(0, 1),
    zlib: streams[0].zlib.frames.range(0, 1),
    zstd: streams[0].zstd?.frames.range(0, 1) ?? null,
  };
  for (const encoding of ['zlib', 'zstd'] as const) {
    if (!streams.every((s) => s[encoding]?.frames.range(0, 1).equals(helloFrames[encoding]!) ?? true)) throw new Error('HELLO messages differ between shards');
  }

  const identifyCheck = config.identifyWindowMs === undefined ? null : new IdentifyLimitCheck(MAX_CONCURRENCY, config.identifyWindowMs);
  const waiting = new Map<number, Connection>();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    wss.handleUpgrade(request, socket, head, (ws) => onConnection(ws, socket, request));
  });
  const onConnection = (ws: WebSocket, socket: Socket, request: IncomingMessage) => {
    const asked = new URL(request.url ?? '/', 'http://127.0.0.1').searchParams.get('compress');
    const encoding: Encoding = asked === 'zlib-stream' ? 'zlib' : asked === 'zstd-stream' ? 'zstd' : 'text';
    const hello = helloFrames[encoding];
    if (hello === null) {
      ws.close(4000, 'zstd-stream is not served: start the load server with zstd: true on a Node with zstd');
      return;
    }
    const connection = new Connection(ws, socket, encoding, hello);
    ws.on('error', () => undefined);
    ws.on('close', () => {
      connection.dispose();
      if (connection.shardId !== null && waiting.get(connection.shardId) === connection) waiting.delete(connection.shardId);
    });
    ws.on('message', (data: Buffer) => {
      let payload: { op?: unknown; d?: any };
      try {
        payload = JSON.parse(data.toString());
      } catch {
        return;
      }
      switch (payload?.op) {
        case 1:
          connection.splice(HEARTBEAT_ACK);
          return;
        case 6:
          connection.splice(INVALID_SESSION);
          return;
        case 2: {
          if (connection.shardId !== null) return;
          const [shardId, total] = Array.isArray(payload.d?.shard) ? (payload.d.shard as number[]) : [0, 1];
          if (total !== spec.shards || !(shardId >= 0 && shardId < total)) {
            ws.close(4010, 'Invalid shard.');
            return;
          }
          identifyCheck?.record(shardId);
          connection.identified(shardId, streams[shardId]);
          waiting.set(shardId, connection);
          // Streaming starts once every shard has identified, so that all shards run at the same time.
          if (waiting.size === spec.shards) {
            const ready = [...waiting.values()];
            waiting.clear();
            for (const c of ready) c.pump();
          }
          return;
        }
        default:
      }
    });
  };
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const path = new URL(request.url ?? '/', 'http://127.0.0.1').pathname;
    if (request.method === 'GET' && path === '/bench/identifies' && identifyCheck) {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(identifyCheck.take()));
      return;
    }
    if (request.method !== 'GET' || !/^\/api(\/v10)?\/gateway(\/bot)?\/?$/.test(path)) {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"404: Not Found","code":0}');
      return;
    }
    const body = {
      url,
      shards: spec.shards,
      session_start_limit: { total: 1_000_000, remaining: 1_000_000, reset_after: 14_400_000, max_concurrency: MAX_CONCURRENCY },
    };
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });

  const ready: LoadServerReady = {
    port,
    plan,
    buildMs: Math.round(performance.now() - started),
    textBytes: streams.reduce((sum, s) => sum + s.text.bytes, 0),
    zlibBytes: streams.reduce((sum, s) => sum + s.zlib.frames.bytes, 0),
    zstdBytes: zstd ? streams.reduce((sum, s) => sum + s.zstd!.frames.bytes, 0) : null,
    eventBytes,
  };
  process.stdout.write(`${READY_PREFIX}${JSON.stringify(ready)}\n`);
  lifetime.ref();
}

if (require.main === module) {
  main().catch((error: Error) => {
    process.stderr.write(`load server: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
}
