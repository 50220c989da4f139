import { describe, it } from 'node:test';
import { expect } from 'expect';
import { randomBytes } from 'node:crypto';
import { GatewayOpcodes } from 'discord-api-types/v10';
import {
  defaultZlibStreamCompression,
  inflateSyncCompression,
  nodeZlibCompression,
  zlibStreamCompression,
  type IDecompressorFactory,
} from '../../lib/nest';
import { collectDispatches, createShard, eventually, startGateway, useGatewayAndShard } from '../helpers/gateway-test-kit';

const factories: [string, IDecompressorFactory][] = [
  ['synchronous inflate', inflateSyncCompression],
  ['node:zlib stream', nodeZlibCompression],
  ['zlib-sync (optional package)', zlibStreamCompression('zlib-sync')],
  ['fflate (optional package)', zlibStreamCompression('fflate')],
];

void describe('zlib-stream decompressors', () => {
  const f = useGatewayAndShard();

  void it('inflates synchronously by default on this Node', () => {
    expect(defaultZlibStreamCompression()).toBe(inflateSyncCompression);
  });

  for (const [name, compression] of factories) {
    void it(`${name}: delivers messages split over several frames, intact and in order`, async () => {
      const gateway = (f.gateway = await startGateway({ compressedFramesPerMessage: 3 }));
      const shard = (f.shard = createShard(gateway, { compression }));
      const seen = collectDispatches(shard);
      await shard.connect();
      const sent: number[] = [];
      for (let i = 0; i < 200; i++) sent.push(gateway.dispatch(0, 'MESSAGE_CREATE', { content: `message ${i}`, i }));
      await eventually(() => seen.events.length >= 201, 15_000, 'every message');
      const messages = seen.events.filter((e) => e.t === 'MESSAGE_CREATE');
      expect(messages.map((e) => e.s)).toEqual(sent);
      expect(messages.map((e) => (e.d as { i: number }).i)).toEqual(sent.map((_, i) => i));
    });

    void it(`${name}: a corrupt stream leads to a resume on a fresh context`, async () => {
      const gateway = (f.gateway = await startGateway());
      const shard = (f.shard = createShard(gateway, { compression }));
      const seen = collectDispatches(shard);
      await shard.connect();
      const resumed = gateway.waitForReady(0, 15_000);
      const resume = gateway.waitForFrame((f) => f.op === GatewayOpcodes.Resume, 15_000);
      gateway.sendCorruptZlib(0);
      await resume;
      await resumed;
      const after = gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
      await eventually(() => seen.events.some((e) => e.s === after), 15_000, 'the event after the resume');
    });

    void it(`${name}: a message gathered over several frames past maxMessageBytes (compressed) is refused, then resumed`, async () => {
      const gateway = (f.gateway = await startGateway({ compressedFramesPerMessage: 4 }));
      const shard = (f.shard = createShard(gateway, { compression, maxMessageBytes: 64 * 1024 }));
      const errors: Error[] = [];
      shard.error$.subscribe((e) => errors.push(e));
      await shard.connect();
      const connection = gateway.connectionOf(0)!;
      const resumed = gateway.waitForReady(0, 15_000);
      // Random text hardly compresses: about 150 KB compressed, in four frames under the cap each.
      connection.sendText(JSON.stringify({ op: 0, t: 'MESSAGE_CREATE', s: 2, d: { content: randomBytes(150 * 1024).toString('base64') } }));
      await resumed;
      expect(errors.some((e) => /a compressed message exceeded 65536 bytes/.test(e.message))).toBe(true);
      expect(connection.closeCode).not.toBe(1000);
    });

    void it(`${name}: a decompression bomb is capped, the connection closed with a non-1000 code, then resumed`, async () => {
      const gateway = (f.gateway = await startGateway());
      const shard = (f.shard = createShard(gateway, { compression, maxMessageBytes: 1024 * 1024 }));
      const errors: Error[] = [];
      shard.error$.subscribe((e) => errors.push(e));
      await shard.connect();
      const connection = gateway.connectionOf(0)!;
      const resumed = gateway.waitForReady(0, 15_000);
      // 32 MiB of JSON that compresses to a few KiB.
      connection.sendText(`{"op":0,"t":"MESSAGE_CREATE","s":2,"d":{"content":"${' '.repeat(32 * 1024 * 1024)}"}}`);
      await resumed;
      expect(errors.some((e) => /exceeded 1048576 bytes/.test(e.message))).toBe(true);
      expect(connection.closeCode).not.toBe(1000);
      expect(gateway.framesOf(GatewayOpcodes.Resume)).toHaveLength(1);
      expect(process.memoryUsage().rss).toBeLessThan(1024 * 1024 * 1024);
    });
  }

  void it('an uncompressed message over maxMessageBytes closes the connection (1009) and the shard resumes', async () => {
    const gateway = (f.gateway = await startGateway());
    const shard = (f.shard = createShard(gateway, { compression: false, maxMessageBytes: 64 * 1024 }));
    await shard.connect();
    const resumed = gateway.waitForReady(0, 15_000);
    const connection = gateway.connectionOf(0)!;
    connection.sendText(`{"op":0,"t":"X","s":2,"d":"${'x'.repeat(100 * 1024)}"}`);
    await resumed;
    // The client closed with 1009 (message too big), which keeps the session.
    expect(connection.closeCode).toBe(1009);
    expect(gateway.framesOf(GatewayOpcodes.Resume)).toHaveLength(1);
  });
});

void describe('node:zlib stream decompressor backlog', () => {
  void it('pauses the socket while 32 messages wait for the thread pool, resumes once they drain, and loses nothing', async () => {
    const { constants, createDeflate } = await import('node:zlib');
    // One zlib-stream: 200 messages, each flushed with Z_SYNC_FLUSH.
    const deflate = createDeflate({ flush: constants.Z_SYNC_FLUSH });
    const frames: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      frames.push(await new Promise<Buffer>((resolve) => {
        const out: Buffer[] = [];
        const onData = (c: Buffer) => out.push(c);
        deflate.on('data', onData);
        deflate.write(JSON.stringify({ i, text: 'x'.repeat(i) }), () => {
          deflate.off('data', onData);
          resolve(Buffer.concat(out));
        });
      }));
    }
    deflate.close();
    const events: string[] = [];
    const payloads: number[] = [];
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const decompressor = nodeZlibCompression.create(
      (payload) => {
        payloads.push((JSON.parse(payload.toString()) as { i: number }).i);
        if (payloads.length === 200) done();
      },
      (error) => events.push(`error ${error.message}`),
      { maxMessageBytes: 1 << 20 },
      { pause: () => events.push('pause'), resume: () => events.push('resume') },
    );
    // A socket that does not stop: every frame pushed at once.
    for (const frame of frames) decompressor.push(frame);
    await finished;
    decompressor.close();
    expect(payloads).toEqual(frames.map((_, i) => i));
    expect(events[0]).toBe('pause');
    expect(events).toContain('resume');
    expect(events.some((e) => e.startsWith('error'))).toBe(false);
    expect(events.lastIndexOf('resume')).toBeGreaterThan(events.lastIndexOf('pause'));
  });
});
