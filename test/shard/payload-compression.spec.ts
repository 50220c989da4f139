import { describe, it } from 'node:test';
import { expect } from 'expect';
import { deflateSync } from 'node:zlib';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { PAYLOAD_COMPRESSION_MIN_BYTES } from '../../lib/nest/testing';
import { collectDispatches, createShard, eventually, startGateway, useGatewayAndShard } from '../helpers/gateway-test-kit';

void describe('payload compression (IDENTIFY compress: true)', () => {
  const f = useGatewayAndShard();

  void it('asks for it in IDENTIFY only, and reads plain text and per-message zlib binary frames in one stream, in order', async () => {
    const gateway = (f.gateway = await startGateway());
    const shard = (f.shard = createShard(gateway, { compression: 'payload' }));
    const seen = collectDispatches(shard);
    await shard.connect();
    const connection = gateway.connectionOf(0)!;
    expect(connection.query.has('compress')).toBe(false);
    expect((gateway.framesOf(GatewayOpcodes.Identify)[0].d as { compress?: boolean }).compress).toBe(true);
    expect(connection.payloadCompression).toBe(true);
    const contents: string[] = [];
    const sent: number[] = [];
    for (let i = 0; i < 60; i++) {
      // Alternating short (text frame) and long (zlib binary frame) payloads.
      const content = i % 2 === 0 ? `short ${i}` : `long ${i} ${'é'.repeat(PAYLOAD_COMPRESSION_MIN_BYTES)}`;
      contents.push(content);
      sent.push(gateway.dispatch(0, 'MESSAGE_CREATE', { content }));
    }
    await eventually(() => seen.events.filter((e) => e.t === 'MESSAGE_CREATE').length === 60, 15_000, 'every message');
    const messages = seen.events.filter((e) => e.t === 'MESSAGE_CREATE');
    expect(messages.map((e) => e.s)).toEqual(sent);
    expect(messages.map((e) => (e.d as { content: string }).content)).toEqual(contents);
    // HELLO and the 30 short ones went as text; READY and the 30 long ones as zlib binary frames.
    expect(connection.sentMessages.binary).toBeGreaterThanOrEqual(30);
    expect(connection.sentMessages.text).toBeGreaterThanOrEqual(31);
  });

  void it('is never combined with transport compression: zlib-stream does not ask for it', async () => {
    const gateway = (f.gateway = await startGateway());
    const shard = (f.shard = createShard(gateway, { compression: 'zlib-stream' }));
    await shard.connect();
    expect(gateway.connectionOf(0)!.query.get('compress')).toBe('zlib-stream');
    expect((gateway.framesOf(GatewayOpcodes.Identify)[0].d as { compress?: boolean }).compress).toBeUndefined();
    expect(gateway.connectionOf(0)!.payloadCompression).toBe(false);
  });

  void it('a binary frame that is not zlib closes the connection with a non-1000 code, and the shard resumes', async () => {
    const gateway = (f.gateway = await startGateway());
    const shard = (f.shard = createShard(gateway, { compression: 'payload' }));
    const errors: Error[] = [];
    shard.error$.subscribe((e) => errors.push(e));
    await shard.connect();
    const connection = gateway.connectionOf(0)!;
    const resumed = gateway.waitForReady(0, 15_000);
    connection.sendBytes(Buffer.from('not zlib at all'));
    await resumed;
    expect(connection.closeCode).not.toBe(1000);
    expect(gateway.framesOf(GatewayOpcodes.Resume)).toHaveLength(1);
    expect(errors.some((e) => /decompress/i.test(e.message))).toBe(true);
  });

  void it('a compressed payload over maxMessageBytes is capped while inflating, then the shard resumes', async () => {
    const gateway = (f.gateway = await startGateway());
    const shard = (f.shard = createShard(gateway, { compression: 'payload', maxMessageBytes: 1024 * 1024 }));
    const errors: Error[] = [];
    shard.error$.subscribe((e) => errors.push(e));
    await shard.connect();
    const connection = gateway.connectionOf(0)!;
    const resumed = gateway.waitForReady(0, 15_000);
    connection.sendBytes(deflateSync(`{"op":0,"t":"MESSAGE_CREATE","s":2,"d":{"content":"${' '.repeat(32 * 1024 * 1024)}"}}`));
    await resumed;
    expect(errors.some((e) => /exceeded 1048576 bytes/.test(e.message))).toBe(true);
    expect(connection.closeCode).not.toBe(1000);
  });
});
