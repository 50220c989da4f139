import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { constants, createDeflate, deflateRawSync } from 'node:zlib';
import WebSocket, { WebSocketServer } from 'ws';
import { planOf, shardEventTexts, type CorpusSpec, type ShardPlan } from './corpus';
import { IdentifyLimitCheck } from './identify-limit-check';

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
}

/** Line prefix of the ready message. */
export const READY_PREFIX = 'BENCH_SERVER_READY ';

const BATCH_BYTES = 256 * 1024;
const FULL_FLUSH_BYTES = 256 * 1024;
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

/** One shard's sequence [HELLO, READY, events...], as JSON text frames and as zlib-stream frames. */
interface ShardStream {
  text: Frames;
  zlib: Frames;
  /** `boundary[i]` is 1 when the deflate context was reset after message `i` (Z_FULL_FLUSH). */
  boundary: Uint8Array;
}

/** Compresses the texts with one deflate context, one message per text, as described above. */
async function compress(text: Frames): Promise<{ zlib: Frames; boundary: Uint8Array }> {
  const deflate = createDeflate({ flush: constants.Z_SYNC_FLUSH });
  let output: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => output.push(chunk));
  const failed = new Promise<never>((_, reject) => deflate.once('error', reject));
  const step = (run: (done: (error?: Error | null) => void) => void) =>
    Promise.race([failed, new Promise<void>((resolve, reject) => run((error) => (error ? reject(error) : resolve())))]);
  const zlib = new Frames(true);
  const boundary = new Uint8Array(text.count);
  let sinceReset = 0;
  for (let i = 0; i < text.count; i++) {
    const input = text.payload(i);
    await step((done) => deflate.write(input, done));
    sinceReset += input.length;
    if (i <= 1 || i === text.count - 1 || sinceReset >= FULL_FLUSH_BYTES) {
      await step((done) => deflate.flush(constants.Z_FULL_FLUSH, () => done()));
      boundary[i] = 1;
      sinceReset = 0;
    }
    zlib.push(output.length === 1 ? output[0] : Buffer.concat(output));
    output = [];
  }
  deflate.close();
  return { zlib: zlib.seal(), boundary };
}

/** A payload compressed on its own, to be spliced in at a reset point of a zlib-stream; both forms framed. */
function splice(payload: object): { text: Buffer; zlib: Buffer } {
  const text = Buffer.from(JSON.stringify(payload));
  return { text: frame(text, false), zlib: frame(deflateRawSync(text, { finishFlush: constants.Z_FULL_FLUSH }), true) };
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
    private readonly compressed: boolean,
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
    this.write((this.compressed ? stream.zlib : stream.text).range(1, 2));
    this.atReset = true;
  }

  /** Sends a payload compressed on its own: now when the stream is at a reset point, else at the next one. */
  splice(payload: { text: Buffer; zlib: Buffer }): void {
    if (!this.compressed) this.write(payload.text);
    else if (this.atReset) this.write(payload.zlib);
    else this.pending.push(payload.zlib);
  }

  /** Sends the shard's events as fast as the socket drains: one batch of frames in flight at a time. */
  pump(): void {
    const stream = this.stream;
    if (!stream) return;
    const frames = this.compressed ? stream.zlib : stream.text;
    while (this.next < frames.count) {
      if (!this.open) return;
      const from = this.next;
      let to = from;
      let bytes = 0;
      // A batch ends early at a reset point when an op 11 is waiting to be spliced in.
      while (to < frames.count && bytes < BATCH_BYTES) {
        bytes += frames.size(to);
        to++;
        if (this.pending.length > 0 && stream.boundary[to - 1] === 1) break;
      }
      this.next = to;
      const drained = this.write(frames.range(from, to));
      this.atReset = !this.compressed || stream.boundary[to - 1] === 1;
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

  const started = performance.now();
  const plan = planOf(spec);
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
    for (const event of shardEventTexts(spec, shardId)) text.push(Buffer.from(event));
    text.seal();
    streams.push({ text, ...(await compress(text)) });
  }
  // Every context starts with the same HELLO, so its first chunk is the same for every shard.
  const helloZlib = streams[0].zlib.range(0, 1);
  if (!streams.every((s) => s.zlib.range(0, 1).equals(helloZlib))) throw new Error('HELLO messages differ between shards');
  const helloText = streams[0].text.range(0, 1);

  const identifyCheck = config.identifyWindowMs === undefined ? null : new IdentifyLimitCheck(MAX_CONCURRENCY, config.identifyWindowMs);
  const waiting = new Map<number, Connection>();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    wss.handleUpgrade(request, socket, head, (ws) => onConnection(ws, socket, request));
  });
  const onConnection = (ws: WebSocket, socket: Socket, request: IncomingMessage) => {
    const query = new URL(request.url ?? '/', 'http://127.0.0.1').searchParams;
    const compressed = query.get('compress') === 'zlib-stream';
    const connection = new Connection(ws, socket, compressed, compressed ? helloZlib : helloText);
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
    zlibBytes: streams.reduce((sum, s) => sum + s.zlib.bytes, 0),
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
