import { constants, createInflate } from 'node:zlib';
import WebSocket from 'ws';
import { NativeSync } from '../native-sync';
import { nodeZstd } from '../node-zstd';
import { dispatchHead, dispatchSequence, startsWith } from './dispatch-head';
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
 * - `raw-filtered`: `raw-node-sync`'s inflate, but `JSON.parse` only of the handled event (and READY); every other
 *   dispatch is recognised, and its sequence read, from the first bytes of its text ({@link dispatchSequence}).
 *   The ceiling of any client that filters: inflating and framing everything cannot be avoided.
 * - `raw-zstd-node`: `zstd-stream`, one `node:zlib` zstd context per connection driven synchronously through its
 *   native handle as `raw-node-sync` drives inflate (`writeSync` with ZSTD_e_continue; Node 22.15 and later),
 *   `JSON.parse` of every payload. Each WebSocket message is one whole gateway message.
 *
 * Nothing else: no heartbeats, no state, no event emitter.
 */

type Decoder = (data: Buffer, onPayload: (payload: any) => void) => void;

/**
 * Gathers zlib-stream WebSocket messages: null until one ends with the Z_SYNC_FLUSH suffix, then the whole
 * gateway message.
 */
function zlibMessages(): (data: Buffer) => Buffer | null {
  let pending: Buffer[] = [];
  return (data) => {
    if (!endsWithSuffix(data)) {
      pending.push(data);
      return null;
    }
    const input = pending.length === 0 ? data : Buffer.concat([...pending, data]);
    pending = [];
    return input;
  };
}

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

function nodeSyncDecoder(): Decoder {
  const inflate = new NativeSync(createInflate(), constants.Z_SYNC_FLUSH);
  const gather = zlibMessages();
  return (data, onPayload) => {
    const input = gather(data);
    if (!input) return;
    const produced = inflate.run(input);
    onPayload(JSON.parse(inflate.output.toString('utf8', 0, produced)));
  };
}

/**
 * `raw-filtered`: inflates everything as `raw-node-sync` does, parses `handled` and READY only; of every other
 * dispatch, `onSkipped` gets the sequence read from its head. Texts that do not start like a dispatch (HELLO) are
 * parsed whole.
 */
function filteredDecoder(handled: string, onSkipped: (sequence: number) => void): Decoder {
  const inflate = new NativeSync(createInflate(), constants.Z_SYNC_FLUSH);
  const handledHead = dispatchHead(handled);
  const readyHead = dispatchHead('READY');
  const gather = zlibMessages();
  return (data, onPayload) => {
    const input = gather(data);
    if (!input) return;
    const produced = inflate.run(input);
    const text = inflate.output;
    if (!startsWith(text, produced, handledHead) && !startsWith(text, produced, readyHead)) {
      const sequence = dispatchSequence(text, produced);
      if (sequence >= 0) {
        onSkipped(sequence);
        return;
      }
    }
    onPayload(JSON.parse(text.toString('utf8', 0, produced)));
  };
}

function zstdNodeDecoder(): Decoder {
  const zstd = nodeZstd();
  if (!zstd) throw new Error(`raw-zstd-node needs zstd in node:zlib (Node 22.15 or later), and this is Node ${process.version}`);
  const decompress = new NativeSync(zstd.createZstdDecompress(), zstd.constants.ZSTD_e_continue);
  return (data, onPayload) => {
    const produced = decompress.run(data);
    onPayload(JSON.parse(decompress.output.toString('utf8', 0, produced)));
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
  'raw-zstd-node': zstdNodeDecoder,
};

function connectShard(config: ClientConfig, meter: Meter, shardId: number): void {
  const compress = config.client === 'raw-zstd-node' ? 'zstd-stream' : 'zlib-stream';
  const ws = new WebSocket(`${config.url}/?v=10&encoding=json&compress=${compress}`, { perMessageDeflate: false });
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

  const decode =
    config.client === 'raw-filtered'
      ? filteredDecoder(config.handledEvent, (sequence) => {
          if (sequence === lastSequence) meter.shardDone(shardId);
        })
      : DECODERS[config.client]?.();
  if (!decode) throw new Error(`raw.ts has no client "${config.client}"`);
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
