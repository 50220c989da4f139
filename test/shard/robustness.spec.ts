import { describe, it } from 'node:test';
import { expect } from 'expect';
import { inspect } from 'node:util';
import { GatewayOpcodes } from 'discord-api-types/v10';
import {
  GatewayFatalError,
  GatewayOptionsError,
  InMemoryIdentifyQueue,
  Shard,
  ShardState,
  type ShardOptions,
} from '../../lib/nest';
import type { LocalGateway } from '../../lib/nest/testing';
import {
  collectDispatches,
  createShard,
  eventually,
  nextDispatch,
  startGateway,
  useGatewayAndShard,
  waitForState,
} from '../helpers/gateway-test-kit';

const SECRET = 'MTAwMDAwMDAwMDAwMDAwMDAx.Secret-Token.DoNotLeak_9f8e7d';

function expectNoSecret(text: string, secret = SECRET): void {
  expect(text).not.toContain(secret);
  // Nor a recognisable piece of it.
  expect(text).not.toContain(secret.slice(secret.length / 2));
}

void describe('Shard robustness', () => {
  const f = useGatewayAndShard();

  async function readyShard(options: Partial<ShardOptions> = {}): Promise<{ gateway: LocalGateway; shard: Shard }> {
    const gateway = (f.gateway = await startGateway());
    const shard = (f.shard = createShard(gateway, options));
    await shard.connect();
    return { gateway, shard };
  }

  void describe('unknown input', () => {
    void it('ignores unknown opcodes without reconnecting or reporting an error', async () => {
      const { gateway, shard } = await readyShard();
      const errors: Error[] = [];
      const debug: string[] = [];
      const subs = [shard.error$.subscribe((e) => errors.push(e)), shard.debug$.subscribe((m) => debug.push(m))];
      const states: ShardState[] = [];
      subs.push(shard.state$.subscribe((s) => states.push(s)));

      gateway.sendPayload(0, { op: 99, d: {} });
      gateway.sendPayload(0, { op: 5, d: null });
      gateway.sendPayload(0, { op: 99, d: { nested: [1, 2, 3] }, s: 12, t: 'WHATEVER' });
      // A second HELLO on the same connection changes nothing.
      gateway.sendPayload(0, { op: GatewayOpcodes.Hello, d: { heartbeat_interval: 5 } });

      const next = nextDispatch(shard, 'MESSAGE_CREATE');
      const s = gateway.dispatch(0, 'MESSAGE_CREATE', { after: 'unknown ops' });
      expect(await next).toMatchObject({ s, d: { after: 'unknown ops' } });
      subs.forEach((sub) => sub.unsubscribe());

      expect(errors).toEqual([]);
      expect(states).toEqual([ShardState.Ready]);
      expect(gateway.connections).toHaveLength(1);
      expect(debug.some((m) => m.includes('99'))).toBe(true);
      expect(shard.info().sequence).toBe(s);
    });

    void it('passes an unknown event name through dispatch$ with its data and sequence', async () => {
      const { gateway, shard } = await readyShard();
      const received = collectDispatches(shard);
      const d = { brand: 'new', list: [1, { x: null }], id: '123456789012345678' };
      const s = gateway.dispatch(0, 'SOMETHING_NEW_2027', d);
      const s2 = gateway.dispatch(0, 'MESSAGE_CREATE', { n: 1 });
      await eventually(() => received.events.length >= 2, 15_000, 'two dispatches');
      received.stop();
      expect(received.events).toEqual([
        { shardId: 0, t: 'SOMETHING_NEW_2027', s, d, sessionId: gateway.sessionOf(0) },
        { shardId: 0, t: 'MESSAGE_CREATE', s: s2, d: { n: 1 }, sessionId: gateway.sessionOf(0) },
      ]);
      expect(shard.state).toBe(ShardState.Ready);
      expect(gateway.connections).toHaveLength(1);
    });

    void it('ignores payloads with wrong types, stays ready and keeps its sequence', async () => {
      const { gateway, shard } = await readyShard({ random: () => 0.5 });
      const s1 = gateway.dispatch(0, 'MESSAGE_CREATE', { n: 1 });
      await eventually(() => shard.info().sequence === s1, 15_000, 'sequence');
      const received = collectDispatches(shard);
      const errors: Error[] = [];
      const errSub = shard.error$.subscribe((e) => errors.push(e));
      const states: ShardState[] = [];
      const stateSub = shard.state$.subscribe((s) => states.push(s));

      const bad: unknown[] = [
        { op: '0', t: 'MESSAGE_CREATE', s: s1 + 1, d: {} }, // op as a string
        { op: 0, t: 'MESSAGE_CREATE', s: String(s1 + 50), d: {} }, // s as a string
        { op: 0, t: 42, s: s1 + 60, d: {} }, // t as a number
        { op: 0, t: null, s: s1 + 70, d: {} },
        { op: 0, t: 'MESSAGE_CREATE', s: s1 + 0.5, d: {} }, // s not an integer
        { op: 0, t: 'MESSAGE_CREATE', s: 1e20, d: {} }, // s not a safe integer
        { op: 0, t: 'MESSAGE_CREATE', d: {} }, // no s
        { op: null, d: null },
        null,
        42,
        'text',
        [1, 2, 3],
        {},
      ];
      for (const payload of bad) gateway.sendPayload(0, payload as object);
      // A heartbeat after the bad payloads carries the sequence the shard kept.
      const beatFrom = gateway.frames.length;
      gateway.requestHeartbeat(0);
      const beat = await gateway.waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat, 15_000, beatFrom);
      expect(beat.d).toBe(s1);
      expect(shard.info().sequence).toBe(s1);

      const next = nextDispatch(shard, 'MESSAGE_CREATE');
      const s2 = gateway.dispatch(0, 'MESSAGE_CREATE', { n: 2 });
      expect(s2).toBe(s1 + 1);
      expect(await next).toMatchObject({ s: s2, d: { n: 2 } });
      received.stop();
      errSub.unsubscribe();
      stateSub.unsubscribe();

      expect(received.events.map((e) => e.s)).toEqual([s2]);
      expect(errors).toEqual([]);
      expect(states).toEqual([ShardState.Ready]);
      expect(gateway.connections).toHaveLength(1);
      expect(shard.info().sequence).toBe(s2);
    });
  });

  void describe('the token never leaks', () => {
    void it('is absent from inspect() and JSON output', async () => {
      const gateway = (f.gateway = await startGateway({ token: SECRET }));
      const shard = (f.shard = createShard(gateway));
      expect(shard.toJSON()).toBeDefined();
      const outputs = (): string[] => [
        inspect(shard),
        inspect(shard, { depth: Infinity, showHidden: true }),
        inspect(shard, { customInspect: false, depth: Infinity, showHidden: true }),
        JSON.stringify(shard),
        JSON.stringify(shard.info()),
        JSON.stringify(shard.session),
        String(shard),
        inspect({ wrapped: [shard] }, { depth: 5 }),
      ];
      for (const text of outputs()) expectNoSecret(text);
      await shard.connect();
      for (const text of outputs()) expectNoSecret(text);
      // The shard really does use it.
      const identify = gateway.framesOf(GatewayOpcodes.Identify)[0];
      expect(identify.d.token).toContain(SECRET);
    });

    void it('is absent from every debug$ and error$ message over connect, faults, resume and close', async () => {
      const gateway = (f.gateway = await startGateway({ token: SECRET, compressedFramesPerMessage: 2 }));
      // Short identify windows, since this cycle identifies several times.
      const shard = (f.shard = createShard(gateway, { compression: 'zlib-stream', identifyQueue: new InMemoryIdentifyQueue({ windowMs: 20 }) }));
      const messages: string[] = [];
      const errors: Error[] = [];
      const subs = [
        shard.debug$.subscribe((m) => messages.push(m)),
        shard.error$.subscribe((e) => errors.push(e)),
      ];
      await shard.connect();
      gateway.dispatch(0, 'MESSAGE_CREATE', { n: 1 });

      let resumed = nextDispatch(shard, 'RESUMED');
      gateway.reconnect(0);
      await resumed;
      resumed = nextDispatch(shard, 'RESUMED');
      gateway.sendInvalidJson(0);
      await resumed;
      resumed = nextDispatch(shard, 'RESUMED');
      gateway.sendCorruptZlib(0);
      await resumed;
      const identified = nextDispatch(shard, 'READY');
      gateway.invalidateSession(0, false);
      await identified;
      await shard.close({ resumable: true });
      await shard.connect(); // resumes the saved session
      await shard.close();

      // Authentication failure is fatal and reported through error$.
      const fatal = waitForState(shard, ShardState.FatallyClosed, 15_000);
      const reconnecting = shard.connect().catch((e: unknown) => e);
      await eventually(() => gateway.connectionOf(0) !== undefined && shard.state === ShardState.Ready, 15_000);
      gateway.closeShard(0, 4004, 'Authentication failed.');
      await fatal;
      expect(await reconnecting).toBeUndefined(); // that connect() had already resolved on READY
      subs.forEach((sub) => sub.unsubscribe());

      expect(gateway.framesOf(GatewayOpcodes.Resume).length).toBeGreaterThanOrEqual(4);
      expect(gateway.framesOf(GatewayOpcodes.Identify).length).toBeGreaterThanOrEqual(3);
      expect(messages.length).toBeGreaterThan(20);
      expect(errors.length).toBeGreaterThanOrEqual(3);
      expect(errors.some((e) => e instanceof GatewayFatalError)).toBe(true);
      for (const m of messages) expectNoSecret(m);

      for (const e of errors) {
        expectNoSecret(e.message);
        expectNoSecret(String(e.stack));
        expectNoSecret(inspect(e));
      }
      expectNoSecret(String(shard.info().lastError));
    });

    void it('is absent from the fatal error of a rejected token', async () => {
      const gateway = (f.gateway = await startGateway({ token: 'the-accepted-token' }));
      const shard = (f.shard = createShard(gateway, { token: SECRET }));
      const error = await shard.connect().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GatewayFatalError);
      expect((error as GatewayFatalError).code).toBe(4004);
      expectNoSecret((error as Error).message);
      expectNoSecret(inspect(error));
      expectNoSecret(inspect(shard));
    });

    void it('is absent from GatewayOptionsError messages about other options', () => {
      const base: ShardOptions = { id: 0, total: 1, token: SECRET, intents: 0, gatewayUrl: 'ws://127.0.0.1:1' };
      const bad: Partial<ShardOptions>[] = [
        { id: 4, total: 2 },
        { intents: -1 },
        { largeThreshold: 1000 },
        { gatewayUrl: `http://${SECRET}.example` },
        { commandRateLimit: { limit: 500 } },
      ];
      for (const override of bad) {
        let thrown: unknown;
        try {
          new Shard({ ...base, ...override });
        } catch (error) {
          thrown = error;
        }
        expect(thrown).toBeInstanceOf(GatewayOptionsError);
        const error = thrown as GatewayOptionsError;
        expectNoSecret(error.message);
        expectNoSecret(inspect(error));
      }
    });
  });

  void describe('options validation', () => {
    const base: ShardOptions = { id: 0, total: 1, token: 'valid-token', intents: 0, gatewayUrl: 'ws://127.0.0.1:1' };

    const invalid: [string, Partial<ShardOptions>, string][] = [
      ['id equal to total', { id: 2, total: 2 }, 'id'],
      ['id above total', { id: 5, total: 2 }, 'id'],
      ['a negative id', { id: -1 }, 'id'],
      ['a fractional id', { id: 0.5 }, 'id'],
      ['total 0', { total: 0 }, 'total'],
      ['largeThreshold 49', { largeThreshold: 49 }, 'largeThreshold'],
      ['largeThreshold 251', { largeThreshold: 251 }, 'largeThreshold'],
      ['an empty token', { token: '' }, 'token'],
      ['a blank token', { token: '   ' }, 'token'],
      ['gatewayUrl http://x', { gatewayUrl: 'http://x' }, 'gatewayUrl'],
      ['a relative gatewayUrl', { gatewayUrl: 'gateway.discord.gg' }, 'gatewayUrl'],
      ['intents -1', { intents: -1 }, 'intents'],
      ['fractional intents', { intents: 1.5 }, 'intents'],
      ['compression "gzip"', { compression: 'gzip' as never }, 'compression'],
      ['an unknown compression type', { compression: { type: 'brotli' } as never }, 'compression.type'],
      ['an unknown zlib-stream engine', { compression: { type: 'zlib-stream', engine: 'pako' } as never }, 'compression.engine'],
      ['an unknown zstd-stream engine', { compression: { type: 'zstd-stream', engine: 'zlib-sync' } as never }, 'compression.engine'],
      ['a negative backoff reset', { backoff: { resetAfterMs: -1 } }, 'backoff.resetAfterMs'],
      ['a fractional backoff reset', { backoff: { resetAfterMs: 1.5 } }, 'backoff.resetAfterMs'],
      ['a reconnect cap of 0', { reconnectLimit: { max: 0 } }, 'reconnectLimit.max'],
      ['an empty reconnect window', { reconnectLimit: { windowMs: 0 } }, 'reconnectLimit.windowMs'],
      ['a reconnect window past the longest timer', { reconnectLimit: { windowMs: 2 ** 31 } }, 'reconnectLimit.windowMs'],
      ['a 0 ms heartbeat floor', { heartbeatIntervalRange: { minMs: 0 } }, 'heartbeatIntervalRange.minMs'],
      ['a heartbeat ceiling past the longest timer', { heartbeatIntervalRange: { maxMs: 1e12 } }, 'heartbeatIntervalRange.maxMs'],
      ['a heartbeat ceiling under the floor', { heartbeatIntervalRange: { minMs: 5_000, maxMs: 4_000 } }, 'heartbeatIntervalRange.maxMs'],
    ];
    for (const [name, override, option] of invalid) {
      void it(`rejects ${name} with a GatewayOptionsError naming the option`, () => {
        let thrown: unknown;
        try {
          new Shard({ ...base, ...override });
        } catch (error) {
          thrown = error;
        }
        expect(thrown).toBeInstanceOf(GatewayOptionsError);
        expect((thrown as GatewayOptionsError).option).toBe(option);
        expect((thrown as Error).message).toContain(`"${option}"`);
      });
    }

    void it('accepts the bounds themselves', () => {
      for (const override of [
        { largeThreshold: 50 },
        { largeThreshold: 250 },
        { id: 1, total: 2 },
        { gatewayUrl: 'wss://gateway.discord.gg' },
        { intents: 0 },
        { compression: { type: 'zlib-stream', engine: 'zlib-sync' } as const },
        { compression: { type: 'zlib-stream', engine: 'fflate' } as const },
        { compression: { type: 'zstd-stream', engine: 'fzstd' } as const },
      ]) {
        expect(() => new Shard({ ...base, ...override })).not.toThrow();
      }
    });

    void it('does not open a connection when the options are invalid', async () => {
      const gateway = (f.gateway = await startGateway());
      expect(() => createShard(gateway, { largeThreshold: 10 })).toThrow(GatewayOptionsError);
      // A valid shard started afterwards has the only connection: the refused one opened none before it.
      const valid = (f.shard = createShard(gateway));
      await valid.connect();
      expect(gateway.connections).toHaveLength(1);
      expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);
    });
  });
});
