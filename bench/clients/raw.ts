import { constants, createInflate } from 'node:zlib';
import WebSocket from 'ws';
import { endsWithSuffix, identifyPayload, loadConfig, Meter, type ClientConfig } from './harness';

/**
 * The floors: `ws` plus the least a client must do.
 *
 * - `frames-only`: counts WebSocket messages, inflates nothing (is the server fast enough?).
 * - `raw-zlib-sync`: one zlib-sync `Inflate` per connection (`push` with Z_SYNC_FLUSH), `JSON.parse` of every payload.
 * - `raw-node-zlib`: one `node:zlib` inflate stream per connection, fed as @discordjs/ws does (write, then collect
 *   the output in the write callback), `JSON.parse` of every payload.
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

  const decode = config.client === 'raw-zlib-sync' ? zlibSyncDecoder() : nodeZlibDecoder();
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
