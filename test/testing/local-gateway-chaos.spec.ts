import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import WebSocket from 'ws';
import { ShardState, type GatewayDispatch } from '../../lib/nest';
import type { LocalDuplicateDispatch, LocalGateway, LocalGatewayChaosOptions } from '../../lib/nest/testing';
import { createShard, startGateway, useGatewayAndShard, waitFor } from '../helpers/gateway-test-kit';

interface Frame {
  op: number;
  t: string | null;
  s: number | null;
  d: any;
}

/** A bare uncompressed client: every frame it received, and a way to wait for the next that matches. */
class RawClient {
  readonly frames: Frame[] = [];
  private waiters: { predicate: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as Frame;
      this.frames.push(frame);
      for (const waiter of this.waiters.filter((w) => w.predicate(frame))) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(frame);
      }
    });
  }

  static async open(gateway: LocalGateway): Promise<RawClient> {
    const ws = new WebSocket(`${gateway.url}/?v=10&encoding=json`);
    const client = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  next(predicate: (f: Frame) => boolean): Promise<Frame> {
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }

  send(payload: object): void {
    this.ws.send(JSON.stringify(payload));
  }

  dispatches(): Frame[] {
    return this.frames.filter((f) => f.op === GatewayOpcodes.Dispatch);
  }

  async close(code = 4000): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.ws.once('close', () => resolve()));
    this.ws.close(code);
    await closed;
  }
}

function identify(client: RawClient, gateway: LocalGateway): Promise<Frame> {
  const ready = client.next((f) => f.t === 'READY');
  client.send({ op: GatewayOpcodes.Identify, d: { token: gateway.token, intents: 513, properties: { os: 'linux', browser: 't', device: 't' } } });
  return ready;
}

/** Always `value`: makes the gateway's chaos choices exact. */
const constant = (value: number) => () => value;

void describe('LocalGateway chaos mode', () => {
  let gateway: LocalGateway | undefined;
  const clients: RawClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
    await gateway?.close();
    gateway = undefined;
  });

  async function start(chaos: LocalGatewayChaosOptions): Promise<LocalGateway> {
    gateway = await startGateway({ heartbeatInterval: 60_000, chaos });
    return gateway;
  }

  async function client(): Promise<RawClient> {
    const opened = await RawClient.open(gateway!);
    clients.push(opened);
    return opened;
  }

  void it('replays an overlapping range on RESUME: events at or below the RESUME seq again, then the missed ones', async () => {
    // random 0.9: the overlap is taken (0.9 < 1) and covers 1 + floor(0.9 * 3) = 3 events.
    const gw = await start({ random: constant(0.9), replayOverlapChance: 1, maxReplayOverlap: 3, resendChance: 0 });
    const duplicates: LocalDuplicateDispatch[] = [];
    gw.on('duplicate', (duplicate: LocalDuplicateDispatch) => duplicates.push(duplicate));
    const first = await client();
    const ready = await identify(first, gw);
    for (let i = 0; i < 5; i++) gw.dispatch(0, 'MESSAGE_CREATE', { n: i });
    await first.next((f) => f.s === 6);
    await first.close();
    gw.dispatch(0, 'MESSAGE_CREATE', { n: 5 });
    gw.dispatch(0, 'MESSAGE_CREATE', { n: 6 });

    const second = await client();
    const resumed = second.next((f) => f.t === 'RESUMED');
    second.send({ op: GatewayOpcodes.Resume, d: { token: gw.token, session_id: ready.d.session_id, seq: 6 } });
    await resumed;
    expect(second.dispatches().map((f) => f.s)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(gw.duplicatesSent).toBe(3);
    expect(duplicates.map((d) => [d.s, d.t, d.cause])).toEqual([
      [4, 'MESSAGE_CREATE', 'replay-overlap'],
      [5, 'MESSAGE_CREATE', 'replay-overlap'],
      [6, 'MESSAGE_CREATE', 'replay-overlap'],
    ]);
  });

  void it('re-sends one of the last ten dispatches after a dispatch, by the chance given', async () => {
    // random 0: every dispatch is followed by a re-send of the oldest of the last ten.
    const gw = await start({ random: constant(0), replayOverlapChance: 0, resendChance: 1 });
    const first = await client();
    await identify(first, gw);
    for (let i = 0; i < 12; i++) gw.dispatch(0, 'MESSAGE_CREATE', { n: i });
    await first.next((f) => f.s === 4 && first.dispatches().length === 26);
    // READY (#1) and 12 events (#2-#13), each followed by the oldest of the session's last ten.
    const expected: number[] = [];
    for (let s = 1; s <= 13; s++) expected.push(s, Math.max(1, s - 9));
    expect(first.dispatches().map((f) => f.s)).toEqual(expected);
    expect(gw.duplicatesSent).toBe(13);
  });

  void it('sends nothing twice without chaos options', async () => {
    gateway = await startGateway({ heartbeatInterval: 60_000 });
    const first = await client();
    const ready = await identify(first, gateway);
    for (let i = 0; i < 20; i++) gateway.dispatch(0, 'MESSAGE_CREATE', { n: i });
    await first.next((f) => f.s === 21);
    await first.close();
    const second = await client();
    const resumed = second.next((f) => f.t === 'RESUMED');
    second.send({ op: GatewayOpcodes.Resume, d: { token: gateway.token, session_id: ready.d.session_id, seq: 21 } });
    await resumed;
    expect(first.dispatches().map((f) => f.s)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(second.dispatches().map((f) => f.s)).toEqual([22]);
    expect(gateway.duplicatesSent).toBe(0);
  });

  void it('records, for the last heartbeat ACK written, the newest dispatch and the heartbeat sequence it answered', async () => {
    gateway = await startGateway({ heartbeatInterval: 60_000 });
    const first = await client();
    await identify(first, gateway);
    const connection = gateway.connectionOf(0)!;
    expect(connection.lastAckSequence).toBeNull();
    gateway.dispatch(0, 'MESSAGE_CREATE', {});
    gateway.dispatch(0, 'MESSAGE_CREATE', {});
    let ack = first.next((f) => f.op === GatewayOpcodes.HeartbeatAck);
    first.send({ op: GatewayOpcodes.Heartbeat, d: 3 });
    await ack;
    expect(connection.lastAckSequence).toBe(3);
    expect(connection.lastAckedHeartbeat).toBe(3);
    gateway.dispatch(0, 'MESSAGE_CREATE', {});
    gateway.setAcks(0, false);
    first.send({ op: GatewayOpcodes.Heartbeat, d: 4 });
    await gateway.waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat && f.d === 4, 15_000, 0);
    expect(connection.lastAckSequence).toBe(3);
    gateway.setAcks(0, true);
    ack = first.next((f) => f.op === GatewayOpcodes.HeartbeatAck);
    first.send({ op: GatewayOpcodes.Heartbeat, d: 4 });
    await ack;
    expect(connection.lastAckSequence).toBe(4);
    expect(connection.lastAckedHeartbeat).toBe(4);
  });

  void it("lists the given guilds in a shard's next READY only (malformNextReady)", async () => {
    gateway = await startGateway({ heartbeatInterval: 60_000, guilds: ['81384788765712384'] });
    gateway.malformNextReady(0, [null, 5, {}]);
    const first = await client();
    expect((await identify(first, gateway)).d.guilds).toEqual([null, 5, {}]);
    const second = await client();
    expect((await identify(second, gateway)).d.guilds).toEqual([{ id: '81384788765712384', unavailable: true }]);
  });
});

void describe('LocalGateway churnAfterReady', () => {
  const fixture = useGatewayAndShard();

  void it('closes every new session of the shard right after its RESUMED went out (compressed), for the time given', async () => {
    const gateway = (fixture.gateway = await startGateway({ heartbeatInterval: 60_000 }));
    const shard = (fixture.shard = createShard(gateway, { backoff: { baseMs: 20, maxMs: 40 } }));
    await shard.connect();
    const resumed: GatewayDispatch[] = [];
    shard.dispatch$.subscribe((event) => {
      if (event.t === 'RESUMED') resumed.push(event);
    });
    const connectionsBefore = gateway.connections.length;
    gateway.churnAfterReady(0, 300, 4000);
    // Back for good: a RESUMED on a connection the churn did not close.
    await waitFor(shard.state$, (state) => state === ShardState.Ready && gateway.connectionOf(0)?.handshakeDone === true, 10_000);

    expect(gateway.churnKills).toBeGreaterThanOrEqual(2);
    // Every connection the churn closed had its RESUMED delivered first (the close waits for the compressor).
    expect(resumed.length).toBe(gateway.churnKills + 1);
    const churned = gateway.connections.slice(connectionsBefore);
    expect(churned.length).toBe(gateway.churnKills + 1);
    for (const connection of churned.slice(0, -1)) {
      expect(connection.closedByServer).toBe(true);
      expect(connection.closeCode).toBe(4000);
    }
    expect(gateway.connectionOf(0)).toBe(churned.at(-1));
  });
});
