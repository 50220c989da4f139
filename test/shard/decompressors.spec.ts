import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import {
  defaultZlibStreamCompression,
  nodeZlibCompression,
  zlibSyncCompression,
  type IDecompressorFactory,
  type Shard,
} from '../../lib';
import type { LocalGateway } from '../../lib/testing';
import { collectDispatches, createShard, eventually, startGateway } from '../helpers/gateway-test-kit';

const factories: [string, IDecompressorFactory][] = [
  ['zlib-sync', zlibSyncCompression],
  ['node:zlib', nodeZlibCompression],
];

void describe('zlib-stream decompressors', () => {
  let gateway: LocalGateway | undefined;
  let shard: Shard | undefined;

  afterEach(async () => {
    await shard?.close();
    await gateway?.close();
    shard = gateway = undefined;
  });

  void it('uses zlib-sync by default when it is installed', () => {
    expect(defaultZlibStreamCompression()).toBe(zlibSyncCompression);
  });

  for (const [name, compression] of factories) {
    void it(`${name}: delivers messages split over several frames, intact and in order`, async () => {
      gateway = await startGateway({ compressedFramesPerMessage: 3 });
      shard = createShard(gateway, { compression });
      const seen = collectDispatches(shard);
      await shard.connect();
      const sent: number[] = [];
      for (let i = 0; i < 200; i++) sent.push(gateway.dispatch(0, 'MESSAGE_CREATE', { content: `message ${i}`, i }));
      await eventually(() => seen.events.length >= 201, 5_000, 'every message');
      const messages = seen.events.filter((e) => e.t === 'MESSAGE_CREATE');
      expect(messages.map((e) => e.s)).toEqual(sent);
      expect(messages.map((e) => (e.d as { i: number }).i)).toEqual(sent.map((_, i) => i));
    });

    void it(`${name}: a corrupt stream leads to a resume on a fresh context`, async () => {
      gateway = await startGateway();
      shard = createShard(gateway, { compression });
      const seen = collectDispatches(shard);
      await shard.connect();
      const resumed = gateway.waitForReady(0, 3_000);
      const resume = gateway.waitForFrame((f) => f.op === GatewayOpcodes.Resume, 3_000);
      gateway.sendCorruptZlib(0);
      await resume;
      await resumed;
      const after = gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
      await eventually(() => seen.events.some((e) => e.s === after), 3_000, 'the event after the resume');
    });
  }
});
