import { describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { Shard, ShardState } from '../../lib/nest';
import type { LocalGateway } from '../../lib/nest/testing';
import {
  collectDispatches,
  createShard,
  eventually,
  nextDispatch,
  startGateway,
  useGatewayAndShard,
  waitFor,
} from '../helpers/gateway-test-kit';

/** A payload with structure, a long string and non-ASCII text, so a bad decode cannot go unnoticed. */
function richPayload(i: number): Record<string, unknown> {
  return {
    id: String(1_100_000_000_000_000_000n + BigInt(i)),
    content: `message ${i}: héllo wörld ✓ 🚀 ${'x'.repeat(i % 7 === 0 ? 3_000 : 20)}`,
    embeds: [{ title: `t${i}`, fields: [{ name: 'n', value: i }] }],
    nested: { deep: { deeper: [i, i * 2, { ok: true, nothing: null }] } },
  };
}

void describe('Shard with zlib-stream transport compression', () => {
  const f = useGatewayAndShard();

  async function connected(options: { framesPerMessage?: number } = {}): Promise<{ gateway: LocalGateway; shard: Shard }> {
    const gateway = (f.gateway = await startGateway({ compressedFramesPerMessage: options.framesPerMessage ?? 1 }));
    const shard = (f.shard = createShard(gateway, { compression: 'zlib-stream', random: () => 0.5 }));
    await shard.connect();
    return { gateway, shard };
  }

  void it('asks for zlib-stream in the URL', async () => {
    const { gateway } = await connected();
    expect(gateway.connections[0].query.get('compress')).toBe('zlib-stream');
    expect(gateway.connections[0].query.get('encoding')).toBe('json');
    expect(gateway.connections[0].query.get('v')).toBe('10');
  });

  void it('reassembles each message that arrives split over several WebSocket frames', async () => {
    const { gateway, shard } = await connected({ framesPerMessage: 3 });
    const received = collectDispatches(shard);
    const sent: { s: number; d: unknown }[] = [];
    for (let i = 0; i < 30; i++) {
      const d = richPayload(i);
      sent.push({ s: gateway.dispatch(0, 'MESSAGE_CREATE', d), d });
    }
    await eventually(() => received.events.length >= sent.length, 15_000, 'all split messages');
    received.stop();
    expect(received.events.map((e) => ({ s: e.s, d: e.d }))).toEqual(sent);
    expect(shard.state).toBe(ShardState.Ready);
    expect(gateway.connections).toHaveLength(1);
  });

  void it('finds the end-of-message suffix when it is split across frames (one byte per frame)', async () => {
    const { gateway, shard } = await connected({ framesPerMessage: 100_000 });
    const received = collectDispatches(shard);
    const sent: { s: number; d: unknown }[] = [];
    for (let i = 1; i <= 10; i++) {
      const d = { n: i, text: 'short' };
      sent.push({ s: gateway.dispatch(0, 'TYPING_START', d), d });
    }
    await eventually(() => received.events.length >= sent.length, 15_000, 'byte-split messages');
    received.stop();
    expect(received.events.map((e) => ({ s: e.s, d: e.d }))).toEqual(sent);
    expect(gateway.connections).toHaveLength(1);
  });

  void it('decodes READY itself when it arrives split', async () => {
    const gateway = (f.gateway = await startGateway({ compressedFramesPerMessage: 3 }));
    const shard = (f.shard = createShard(gateway, { compression: 'zlib-stream' }));
    const ready = nextDispatch(shard, 'READY');
    await shard.connect();
    const event = await ready;
    expect((event.d as { session_id: string }).session_id).toBe(gateway.sessionOf(0));
  });

  void it('delivers 500 dispatches in a row complete and in order', async () => {
    const { gateway, shard } = await connected({ framesPerMessage: 2 });
    const received = collectDispatches(shard);
    const first = gateway.dispatch(0, 'MESSAGE_CREATE', richPayload(0));
    for (let i = 1; i < 500; i++) gateway.dispatch(0, 'MESSAGE_CREATE', richPayload(i));
    await eventually(() => received.events.length >= 500, 10_000, '500 dispatches');
    received.stop();
    expect(received.events).toHaveLength(500);
    received.events.forEach((event, i) => {
      expect(event.s).toBe(first + i);
      expect(event.d).toEqual(richPayload(i));
    });
    expect(shard.info().sequence).toBe(first + 499);
  });

  void it('starts a fresh inflate context on each connection, so events decode after a resume', async () => {
    const { gateway, shard } = await connected({ framesPerMessage: 3 });
    const errors: Error[] = [];
    const sub = shard.error$.subscribe((e) => errors.push(e));
    // Build up history in the first connection's inflate context.
    for (let i = 0; i < 20; i++) gateway.dispatch(0, 'MESSAGE_CREATE', richPayload(i));
    await eventually(() => shard.info().sequence === 21, 15_000, 'first batch');

    for (const fault of ['reconnect', 'drop'] as const) {
      const resumed = nextDispatch(shard, 'RESUMED');
      if (fault === 'reconnect') gateway.reconnect(0);
      else gateway.dropShard(0);
      await resumed;
      const marker = { fault, ...richPayload(7) };
      const next = nextDispatch(shard, 'TYPING_START');
      const s = gateway.dispatch(0, 'TYPING_START', marker);
      const event = await next;
      expect(event.s).toBe(s);
      expect(event.d).toEqual(marker);
    }
    sub.unsubscribe();
    expect(errors).toEqual([]);
    expect(gateway.connections).toHaveLength(3);
    for (const c of gateway.connections) expect(c.query.get('compress')).toBe('zlib-stream');
    expect(gateway.framesOf(GatewayOpcodes.Resume)).toHaveLength(2);
  });

  void it('closes with a non-1000 code on a corrupt zlib stream, resumes, and keeps receiving', async () => {
    const { gateway, shard } = await connected({ framesPerMessage: 3 });
    gateway.dispatch(0, 'MESSAGE_CREATE', richPayload(1));
    await eventually(() => shard.info().sequence === 2, 15_000, 'sequence 2');
    const errorSeen = waitFor(shard.error$, () => true);
    const resumed = nextDispatch(shard, 'RESUMED');
    const first = gateway.connections[0];

    gateway.sendCorruptZlib(0);

    const error = await errorSeen;
    expect(error.message).toMatch(/decompress/i);
    await resumed;
    await eventually(() => first.closeCode !== null, 15_000, 'old connection closed');
    expect([1000, 1001]).not.toContain(first.closeCode);
    expect(shard.fatalError).toBeNull();

    const resume = gateway.framesOf(GatewayOpcodes.Resume);
    expect(resume).toHaveLength(1);
    expect(resume[0].d).toMatchObject({ session_id: gateway.sessionOf(0), seq: 2 });
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);

    const next = nextDispatch(shard, 'MESSAGE_CREATE');
    const s = gateway.dispatch(0, 'MESSAGE_CREATE', richPayload(2));
    const event = await next;
    expect(event.s).toBe(s);
    expect(event.d).toEqual(richPayload(2));
  });

  const invalidJsonCases: [string, 'zlib-stream' | false][] = [
    ['with zlib-stream', 'zlib-stream'],
    ['without compression', false],
  ];
  for (const [name, compression] of invalidJsonCases) {
    void it(`treats invalid JSON ${name} as a broken connection: reports it, resumes and does not crash`, async () => {
      const gateway = (f.gateway = await startGateway({ compressedFramesPerMessage: 3 }));
      const shard = (f.shard = createShard(gateway, { compression }));
      await shard.connect();
      const s1 = gateway.dispatch(0, 'MESSAGE_CREATE', { n: 1 });
      await eventually(() => shard.info().sequence === s1, 15_000, 'first dispatch');
      const errorSeen = waitFor(shard.error$, () => true);
      const resumed = nextDispatch(shard, 'RESUMED');
      const first = gateway.connections[0];

      gateway.sendInvalidJson(0);

      expect((await errorSeen).message).toMatch(/JSON/);
      await resumed;
      await eventually(() => first.closeCode !== null, 15_000, 'old connection closed');
      expect([1000, 1001]).not.toContain(first.closeCode);
      expect(gateway.framesOf(GatewayOpcodes.Resume)[0]?.d).toMatchObject({ seq: s1 });
      expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);

      const next = nextDispatch(shard, 'MESSAGE_CREATE');
      const s2 = gateway.dispatch(0, 'MESSAGE_CREATE', { n: 2 });
      expect(await next).toMatchObject({ s: s2, d: { n: 2 } });
      expect(shard.state).toBe(ShardState.Ready);
      expect(shard.info().lastError).toMatch(/JSON/);
    });
  }

  void it('replays, decoded and in order, the events the broken connection could no longer decode', async () => {
    const { gateway, shard } = await connected({ framesPerMessage: 3 });
    const received = collectDispatches(shard);
    const resumed = nextDispatch(shard, 'RESUMED');
    gateway.sendCorruptZlib(0);
    // These follow the corrupt bytes on the same inflate stream, so only the RESUME replay can deliver them.
    const sent: number[] = [];
    for (let i = 0; i < 5; i++) sent.push(gateway.dispatch(0, 'MESSAGE_CREATE', richPayload(i)));
    await resumed;
    received.stop();
    const messages = received.events.filter((e) => e.t === 'MESSAGE_CREATE');
    expect(messages.map((e) => e.s)).toEqual(sent);
    messages.forEach((e, i) => expect(e.d).toEqual(richPayload(i)));
    expect(received.events[received.events.length - 1].t).toBe('RESUMED');
    expect(gateway.connections).toHaveLength(2);
  });
});
