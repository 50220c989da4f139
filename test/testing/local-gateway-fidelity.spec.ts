import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { constants, inflateSync } from 'node:zlib';
import { REST } from '@discordjs/rest';
import {
  CompressionMethod,
  WebSocketManager,
  WebSocketShardEvents,
  version as discordjsWsVersion,
} from '@discordjs/ws';
import {
  GatewayDispatchEvents,
  GatewayIntentBits,
  GatewayOpcodes,
  type GatewayDispatchPayload,
  type GatewayReadyDispatchData,
} from 'discord-api-types/v10';
import WebSocket from 'ws';
import type { LocalGateway } from '../../lib/nest/testing';
import { eventually, startGateway } from '../helpers/gateway-test-kit';

const TOKEN = 'fidelity-test-token';
const INTENTS = GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessages;

/** Resolves with the first event `name` of `manager` whose payload matches. */
function onceMatching<T>(
  manager: WebSocketManager,
  name: WebSocketShardEvents,
  predicate: (payload: T) => boolean = () => true,
  ms = 5_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const listener = (payload: T) => {
      if (!predicate(payload)) return;
      clearTimeout(timer);
      manager.off(name as never, listener as never);
      resolve(payload);
    };
    const timer = setTimeout(() => {
      manager.off(name as never, listener as never);
      reject(new Error(`no ${name} event within ${ms} ms`));
    }, ms);
    manager.on(name as never, listener as never);
  });
}

void describe('LocalGateway fidelity', () => {
  let gateway: LocalGateway | undefined;
  let manager: WebSocketManager | undefined;

  afterEach(async () => {
    await manager?.destroy();
    manager?.removeAllListeners();
    await gateway?.close();
    manager = undefined;
    gateway = undefined;
  });

  void describe('REST discovery', () => {
    void it('requires "Authorization: Bot <token>" on GET /api/v10/gateway/bot', async () => {
      gateway = await startGateway({ token: TOKEN, shards: 3 });
      const url = `${gateway.apiUrl}/v10/gateway/bot`;
      const refused: Record<string, string>[] = [
        {},
        { Authorization: TOKEN },
        { Authorization: 'Bot wrong-token' },
        { Authorization: `Bearer ${TOKEN}` },
      ];
      for (const headers of refused) {
        const response = await fetch(url, { headers });
        expect(response.status).toBe(401);
        await response.text();
      }
    });

    void it('returns url, shards and session_start_limit to an authorised GET /api/v10/gateway/bot', async () => {
      gateway = await startGateway({
        token: TOKEN,
        shards: 3,
        sessionStartLimit: { remaining: 42, max_concurrency: 2 },
      });
      const response = await fetch(`${gateway.apiUrl}/v10/gateway/bot`, { headers: { Authorization: `Bot ${TOKEN}` } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('application/json');
      const body = (await response.json()) as Record<string, any>;
      expect(body).toEqual({
        url: gateway.url,
        shards: 3,
        session_start_limit: { total: 1000, remaining: 42, reset_after: expect.any(Number), max_concurrency: 2 },
      });
      expect(body.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    });

    void it('serves GET /api/v10/gateway without authorisation', async () => {
      gateway = await startGateway({ token: TOKEN });
      const response = await fetch(`${gateway.apiUrl}/v10/gateway`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ url: gateway.url });
    });
  });

  void describe(`@discordjs/ws ${discordjsWsVersion} against the local gateway`, () => {
    function createManager(gw: LocalGateway, compression: CompressionMethod | null = null): WebSocketManager {
      const rest = new REST({ api: gw.apiUrl, version: '10', handlerSweepInterval: 0, hashSweepInterval: 0 }).setToken(TOKEN);
      return new WebSocketManager({
        token: TOKEN,
        intents: INTENTS,
        rest,
        shardCount: 1,
        compression,
        helloTimeout: 3_000,
        readyTimeout: 3_000,
        handshakeTimeout: 3_000,
      });
    }

    void it('discovers the gateway over REST, identifies, receives READY and an injected dispatch', async () => {
      gateway = await startGateway({ token: TOKEN, sessionStartLimit: { remaining: 10 } });
      manager = createManager(gateway);
      const ready = onceMatching<GatewayReadyDispatchData>(manager, WebSocketShardEvents.Ready);
      await manager.connect();
      const data = await ready;

      expect(data.session_id).toBe(gateway.sessionOf(0));
      expect(data.resume_gateway_url).toBe(gateway.resumeUrl);
      expect(data.user.bot).toBe(true);
      expect(data.shard).toEqual([0, 1]);

      const connection = gateway.connections[0];
      expect(connection.query.get('v')).toBe('10');
      expect(connection.query.get('encoding')).toBe('json');
      const identify = gateway.framesOf(GatewayOpcodes.Identify);
      expect(identify).toHaveLength(1);
      expect(identify[0].d).toMatchObject({ token: TOKEN, intents: INTENTS, shard: [0, 1] });
      expect(identify[0].d.properties).toEqual({
        os: expect.any(String),
        browser: expect.any(String),
        device: expect.any(String),
      });
      expect(gateway.sessionStartLimit.remaining).toBe(9);

      const dispatched = onceMatching<GatewayDispatchPayload>(
        manager,
        WebSocketShardEvents.Dispatch,
        (p) => p.t === GatewayDispatchEvents.MessageCreate,
      );
      const d = { id: '1234567890123456789', channel_id: '1', content: 'hello from the local gateway' };
      const s = gateway.dispatch(0, GatewayDispatchEvents.MessageCreate, d);
      const event = await dispatched;
      expect(event).toMatchObject({ op: GatewayOpcodes.Dispatch, t: GatewayDispatchEvents.MessageCreate, s, d });
    });

    void it('acknowledges its heartbeats, which carry the last sequence', async () => {
      // A third-party client's own heartbeat timer (no clock to inject): a 1 s interval, and a deadline, not a bound.
      gateway = await startGateway({ token: TOKEN, heartbeatInterval: 1_000 });
      manager = createManager(gateway);
      const ready = onceMatching(manager, WebSocketShardEvents.Ready);
      await manager.connect();
      await ready;
      const received = onceMatching<GatewayDispatchPayload>(manager, WebSocketShardEvents.Dispatch, (p) => p.t === 'TYPING_START');
      const s = gateway.dispatch(0, 'TYPING_START', { channel_id: '1' });
      await received;
      const from = gateway.frames.length;
      const beat = await onceMatching<{ latency: number }>(manager, WebSocketShardEvents.HeartbeatComplete, () => true, 15_000);
      expect(beat.latency).toBeGreaterThanOrEqual(0);
      const frame = await gateway.waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat, 15_000, from);
      expect(frame.d).toBe(s);
    });

    void it('lets it resume on op 7: RESUME goes to the resume URL and missed events are replayed', async () => {
      gateway = await startGateway({ token: TOKEN });
      manager = createManager(gateway);
      const ready = onceMatching<GatewayReadyDispatchData>(manager, WebSocketShardEvents.Ready);
      await manager.connect();
      const { session_id } = await ready;
      const first = onceMatching<GatewayDispatchPayload>(manager, WebSocketShardEvents.Dispatch, (p) => p.t === 'TYPING_START');
      const s1 = gateway.dispatch(0, 'TYPING_START', { n: 1 });
      await first;
      const resumed = onceMatching(manager, WebSocketShardEvents.Resumed);
      const seen: number[] = [];
      manager.on(WebSocketShardEvents.Dispatch, (p) => {
        if (p.t === 'TYPING_START') seen.push(p.s);
      });
      const firstConnection = gateway.connections[0];
      gateway.reconnect(0);
      await eventually(() => firstConnection.closeCode !== null, 15_000, 'old connection closed');
      // The old connection is gone, so this one cannot have been seen before the RESUME.
      const s2 = gateway.dispatch(0, 'TYPING_START', { n: 2 });
      await resumed;
      await eventually(() => seen.includes(s2), 15_000, 'missed event');
      expect(s2).toBe(s1 + 1);
      expect(seen).toEqual([s2]);

      const resume = gateway.framesOf(GatewayOpcodes.Resume);
      expect(resume).toHaveLength(1);
      expect(resume[0].d).toEqual({ token: TOKEN, session_id, seq: s1 });
      expect(gateway.connections.at(-1)!.path).toBe(new URL(gateway.resumeUrl).pathname);
      expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);
    });


    void it('speaks zlib-stream that its native inflater decodes', async () => {
      // One WebSocket message per payload, as Discord sends them.
      gateway = await startGateway({ token: TOKEN });
      manager = createManager(gateway, CompressionMethod.ZlibNative);
      const ready = onceMatching<GatewayReadyDispatchData>(manager, WebSocketShardEvents.Ready);
      await manager.connect();
      expect((await ready).session_id).toBe(gateway.sessionOf(0));
      expect(gateway.connections[0].query.get('compress')).toBe('zlib-stream');
      const events: GatewayDispatchPayload[] = [];
      manager.on(WebSocketShardEvents.Dispatch, (payload) => {
        if (payload.t === GatewayDispatchEvents.MessageCreate) events.push(payload);
      });
      const text = (i: number) => `${i}: ${'ü✓'.repeat(i * 10)}`;
      const sent: number[] = [];
      for (let i = 0; i < 20; i++) sent.push(gateway.dispatch(0, GatewayDispatchEvents.MessageCreate, { i, text: text(i) }));
      await eventually(() => events.length === sent.length, 15_000, 'compressed dispatches');
      expect(events.map((e) => e.s)).toEqual(sent);
      events.forEach((e, i) => expect(e.d).toEqual({ i, text: text(i) }));
    });
  });

  void describe('zlib-stream, checked with a reference decoder', () => {
    /**
     * Decodes zlib-stream as Discord documents it: buffer binary messages until one ends with 00 00 ff ff,
     * then inflate with the one context of the connection. Here the context is replayed from the start with
     * inflateSync, so that nothing from the library under test is involved.
     */
    function referenceDecoder(): (message: Buffer) => string | null {
      const all: Buffer[] = [];
      let decodedBytes = 0;
      return (message) => {
        all.push(message);
        const tail = message.subarray(-4);
        if (tail.length < 4 || !tail.equals(Buffer.from([0x00, 0x00, 0xff, 0xff]))) return null;
        const output = inflateSync(Buffer.concat(all), { finishFlush: constants.Z_SYNC_FLUSH });
        const text = output.subarray(decodedBytes).toString('utf8');
        decodedBytes = output.length;
        return text;
      };
    }

    void it('sends HELLO, READY and dispatches a standard zlib decoder can read', async () => {
      gateway = await startGateway({ token: TOKEN });
      const ws = new WebSocket(`${gateway.url}/?v=10&encoding=json&compress=zlib-stream`);
      const decode = referenceDecoder();
      const payloads: any[] = [];
      const binary: boolean[] = [];
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        binary.push(isBinary);
        const text = decode(data);
        if (text !== null) payloads.push(JSON.parse(text));
      });
      try {
        await eventually(() => payloads.length >= 1, 15_000, 'HELLO');
        expect(payloads[0]).toEqual({ op: GatewayOpcodes.Hello, d: { heartbeat_interval: expect.any(Number) } });
        ws.send(
          JSON.stringify({
            op: GatewayOpcodes.Identify,
            d: { token: TOKEN, intents: INTENTS, properties: { os: 'linux', browser: 'test', device: 'test' } },
          }),
        );
        await eventually(() => payloads.some((p) => p.t === 'READY'), 15_000, 'READY');
        const ready = payloads.find((p) => p.t === 'READY');
        expect(ready).toMatchObject({ op: 0, s: 1, d: { session_id: gateway.sessionOf(0), v: 10 } });
        const s = gateway.dispatch(0, GatewayDispatchEvents.MessageCreate, { content: 'ü✓ compressed' });
        await eventually(() => payloads.some((p) => p.s === s), 15_000, 'dispatch');
        expect(payloads.find((p) => p.s === s)).toEqual({
          op: 0,
          t: GatewayDispatchEvents.MessageCreate,
          s,
          d: { content: 'ü✓ compressed' },
        });
        expect(binary.every(Boolean)).toBe(true);
      } finally {
        ws.terminate();
      }
    });
  });
});
