import { describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { resolveShardOptions } from '../../lib/core/shard/resolve-shard-options';
import { nodeZstdCompression, supportsZstdSync, zstdStreamCompression, type IDecompressorFactory } from '../../lib/nest';
import { ZstdStreamEncoder } from '../../lib/nest/testing';
import { collectDispatches, createShard, eventually, startGateway, useGatewayAndShard } from '../helpers/gateway-test-kit';

const engines: [string, IDecompressorFactory][] = [['fzstd (optional package)', zstdStreamCompression('fzstd')]];
if (supportsZstdSync()) engines.push(["node:zlib's zstd", nodeZstdCompression]);

void describe('zstd-stream transport compression', () => {
  const f = useGatewayAndShard();

  void it("'zstd-stream' picks Node's own zstd where this Node has it, else fzstd", () => {
    const factory = resolveShardOptions({ id: 0, total: 1, token: 't', intents: 0, compression: 'zstd-stream' }).compression;
    expect(factory && factory.query).toBe('zstd-stream');
    if (supportsZstdSync()) expect(factory).toBe(nodeZstdCompression);
    else expect(factory).not.toBe(nodeZstdCompression);
  });

  void it("engine 'node' fails at startup, naming the option, where this Node has no zstd", () => {
    const resolve = () => resolveShardOptions({ id: 0, total: 1, token: 't', intents: 0, compression: { type: 'zstd-stream', engine: 'node' } });
    if (supportsZstdSync()) expect(resolve().compression).toBe(nodeZstdCompression);
    else expect(resolve).toThrow(/"compression\.engine".*Node 22\.15/);
  });

  for (const [name, compression] of engines) {
    void it(`${name}: every WebSocket message is one payload, intact and in order, over one context`, async () => {
      const gateway = (f.gateway = await startGateway());
      const shard = (f.shard = createShard(gateway, { compression }));
      const seen = collectDispatches(shard);
      await shard.connect();
      expect(gateway.connections[0].query.get('compress')).toBe('zstd-stream');
      const sent: number[] = [];
      for (let i = 0; i < 200; i++) sent.push(gateway.dispatch(0, 'MESSAGE_CREATE', { content: `message ${i} ✓ ünïcödé`, i }));
      // Larger than one 128 KiB zstd block.
      const big = 'x'.repeat(300 * 1024);
      sent.push(gateway.dispatch(0, 'MESSAGE_CREATE', { content: big, i: 200 }));
      await eventually(() => seen.events.length >= 202, 15_000, 'every message');
      const messages = seen.events.filter((e) => e.t === 'MESSAGE_CREATE');
      expect(messages.map((e) => e.s)).toEqual(sent);
      expect(messages.slice(0, 200).map((e) => (e.d as { content: string }).content)).toEqual(sent.slice(0, 200).map((_, i) => `message ${i} ✓ ünïcödé`));
      expect((messages[200].d as { content: string }).content).toBe(big);
      expect(gateway.connections).toHaveLength(1);
    });

    void it(`${name}: a corrupt stream leads to a resume on a fresh context`, async () => {
      const gateway = (f.gateway = await startGateway());
      const shard = (f.shard = createShard(gateway, { compression }));
      const seen = collectDispatches(shard);
      const errors: Error[] = [];
      shard.error$.subscribe((e) => errors.push(e));
      await shard.connect();
      const resumed = gateway.waitForReady(0, 15_000);
      const resume = gateway.waitForFrame((f) => f.op === GatewayOpcodes.Resume, 15_000);
      // A block of the reserved type 3.
      gateway.connectionOf(0)!.sendBytes(Buffer.from([0x06, 0x00, 0x00, 0x01, 0x02]));
      await resume;
      await resumed;
      expect(gateway.connections[0].closeCode).not.toBe(1000);
      const after = gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
      await eventually(() => seen.events.some((e) => e.s === after), 15_000, 'the event after the resume');
    });

    void it(`${name}: a message over maxMessageBytes closes the connection with a non-1000 code, then resumes`, async () => {
      const gateway = (f.gateway = await startGateway());
      const shard = (f.shard = createShard(gateway, { compression, maxMessageBytes: 256 * 1024 }));
      await shard.connect();
      const connection = gateway.connectionOf(0)!;
      const resumed = gateway.waitForReady(0, 15_000);
      connection.sendText(`{"op":0,"t":"MESSAGE_CREATE","s":2,"d":{"content":"${' '.repeat(2 * 1024 * 1024)}"}}`);
      await resumed;
      expect(connection.closeCode).not.toBe(1000);
      expect(gateway.framesOf(GatewayOpcodes.Resume)).toHaveLength(1);
    });
  }

  void it("the local gateway's zstd-stream encoder (raw blocks where Node has no zstd) decodes message by message", async () => {
    const encoder = new ZstdStreamEncoder(() => undefined);
    const parts: Buffer[] = [];
    // The first message is HELLO-sized: fzstd reads the frame header only once it holds 18 bytes.
    const hello = JSON.stringify({ op: 10, d: { heartbeat_interval: 41250, _trace: ['["gateway-prd-us-east1-b-0568",{"micros":0.0}]'] } });
    for (const text of [hello, '', 'y'.repeat(200_000)]) parts.push(await new Promise<Buffer>((resolve) => encoder.write(text, resolve)));
    encoder.close();
    const decoded: string[] = [];
    const decoder = zstdStreamCompression('fzstd').create((p) => decoded.push(p.toString()), (e) => decoded.push(`error ${e.message}`), { maxMessageBytes: 1 << 20 });
    for (const part of parts) decoder.push(part);
    expect(decoded).toEqual([hello, 'y'.repeat(200_000)]);
    if (!encoder.compresses) expect(parts[0].subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
  });
});
