import { constants, createInflate, type Inflate } from 'node:zlib';
import WebSocket from 'ws';
import { endsWithSuffix, identifyPayload, loadConfig, Meter, type ClientConfig } from './harness';

/**
 * The floors: `ws` plus the least a client must do.
 *
 * - `frames-only`: counts WebSocket messages, inflates nothing (is the server fast enough?).
 * - `raw-zlib-sync`: one zlib-sync `Inflate` per connection (`push` with Z_SYNC_FLUSH), `JSON.parse` of every payload.
 * - `raw-node-zlib`: one `node:zlib` inflate stream per connection, fed as @discordjs/ws does (write, then collect
 *   the output in the write callback), `JSON.parse` of every payload.
 * - `raw-node-sync`: one `node:zlib` inflate context per connection, driven synchronously through its native handle
 *   (`writeSync`, as Node's own `inflateSync` does and as the library's `InflateSyncDecompressor` does) into one
 *   output buffer that grows to the largest message, `JSON.parse` of every payload.
 * - `raw-fflate`: one fflate `Unzlib` stream per connection (pure JavaScript), `push(data, false)`, `JSON.parse` of
 *   every payload. It fails if a flushed message's output is not all there after its last frame was pushed.
 *
 * Nothing else: no heartbeats, no state, no event emitter.
 */

type Decoder = (data: Buffer, onPayload: (payload: any) => void) => void;

function zlibSyncDecoder(): Decoder {
  // Loaded here so that the other clients do not load the native module.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ZlibSync = require('zlib-sync') as typeof import('zlib-sync');
  const inflate = new ZlibSync.Inflate({ chunkSize: 65_535, to: 'string' });
  return (data, onPayload) => {
    const flush = endsWithSuffix(data);
    inflate.push(data, flush ? ZlibSync.Z_SYNC_FLUSH : ZlibSync.Z_NO_FLUSH);
    if (inflate.err) throw new Error(`zlib-sync: ${inflate.err} ${inflate.msg ?? ''}`);
    if (flush) onPayload(JSON.parse(inflate.result as string));
  };
}

function nodeZlibDecoder(): Decoder {
  const inflate = createInflate({ chunkSize: 65_535, flush: constants.Z_SYNC_FLUSH });
  let output: Buffer[] = [];
  inflate.on('data', (chunk: Buffer) => output.push(chunk));
  inflate.on('error', (error) => {
    throw error;
  });
  return (data, onPayload) => {
    const flush = endsWithSuffix(data);
    inflate.write(data, () => {
      if (!flush) return;
      const text = output.length === 1 ? output[0] : Buffer.concat(output);
      output = [];
      onPayload(JSON.parse(text.toString()));
    });
  };
}

/** The synchronous part of a `node:zlib` handle. */
interface ZlibHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number) => void;
}

function nodeSyncDecoder(): Decoder {
  const engine = createInflate() as Inflate & { _handle: ZlibHandle; _writeState: Uint32Array };
  const handle = engine._handle;
  // After each writeSync: [avail_out, avail_in].
  const state = engine._writeState;
  let failure: string | null = null;
  handle.onerror = (message) => {
    failure = message;
  };
  let out = Buffer.allocUnsafe(64 * 1024);
  let pending: Buffer[] = [];
  return (data, onPayload) => {
    if (!endsWithSuffix(data)) {
      pending.push(data);
      return;
    }
    const input = pending.length === 0 ? data : Buffer.concat([...pending, data]);
    pending = [];
    let inOff = 0;
    let inLen = input.length;
    let produced = 0;
    for (;;) {
      handle.writeSync(constants.Z_SYNC_FLUSH, input, inOff, inLen, out, produced, out.length - produced);
      if (failure) throw new Error(`node:zlib: ${failure}`);
      inOff += inLen - state[1];
      inLen = state[1];
      produced = out.length - state[0];
      if (state[0] !== 0) break;
      // Output buffer full: grow it and go on.
      const larger = Buffer.allocUnsafe(out.length * 2);
      out.copy(larger, 0, 0, produced);
      out = larger;
    }
    onPayload(JSON.parse(out.toString('utf8', 0, produced)));
  };
}

function fflateDecoder(): Decoder {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fflate = require('fflate') as typeof import('fflate');
  let chunks: Uint8Array[] = [];
  const inflate = new fflate.Unzlib((chunk) => chunks.push(chunk));
  return (data, onPayload) => {
    inflate.push(data, false);
    if (!endsWithSuffix(data)) return;
    if (chunks.length === 0) throw new Error('fflate: no output after a flushed message');
    const text = chunks.length === 1 ? Buffer.from(chunks[0].buffer, chunks[0].byteOffset, chunks[0].length) : Buffer.concat(chunks);
    chunks = [];
    onPayload(JSON.parse(text.toString()));
  };
}

const DECODERS: Record<string, () => Decoder> = {
  'raw-zlib-sync': zlibSyncDecoder,
  'raw-node-zlib': nodeZlibDecoder,
  'raw-node-sync': nodeSyncDecoder,
  'raw-fflate': fflateDecoder,
};

function connectShard(config: ClientConfig, meter: Meter, shardId: number): void {
  const ws = new WebSocket(`${config.url}/?v=10&encoding=json&compress=zlib-stream`, { perMessageDeflate: false });
  const lastSequence = meter.lastSequence(shardId);
  ws.on('error', (error) => {
    process.stderr.write(`${config.client} shard ${shardId}: ${error.message}\n`);
    process.exit(1);
  });

  if (config.client === 'frames-only') {
    // HELLO, READY, then one message per event.
    const lastMessage = config.plan[shardId].events + 2;
    let messages = 0;
    ws.on('message', () => {
      messages++;
      if (messages === 1) ws.send(identifyPayload(config, shardId));
      else if (messages === 2) meter.shardReady(shardId);
      if (messages === lastMessage) meter.shardDone(shardId);
    });
    return;
  }

  const decoder = DECODERS[config.client];
  if (!decoder) throw new Error(`raw.ts has no client "${config.client}"`);
  const decode = decoder();
  const onPayload = (payload: { op: number; t?: string; s?: number }) => {
    if (payload.op === 0) {
      if (payload.t === 'READY') meter.shardReady(shardId);
      if (payload.s === lastSequence) meter.shardDone(shardId);
    } else if (payload.op === 10) {
      ws.send(identifyPayload(config, shardId));
    }
  };
  ws.on('message', (data: Buffer) => decode(data, onPayload));
}

const config = loadConfig();
const meter = new Meter(config);
for (let shardId = 0; shardId < config.plan.length; shardId++) connectShard(config, meter, shardId);
