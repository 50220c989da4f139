import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { Injectable } from '@nestjs/common';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { ClusterService, GatewayModule, OnEvent, type GatewayEventContext, type GatewayModuleOptions } from '../../lib/nest';
import { InMemorySessionStore, ShardState, type ShardSession } from '../../lib/core';
import { createMessage, type LocalGateway } from '../../lib/nest/testing';
import { eventually, eventuallyAsync } from '../helpers/gateway-test-kit';
import { NestHarness, moduleOptions } from './nest-test-kit';

const GUILD_ON_SHARD_0 = '81384788765712384';
const GUILD_ON_SHARD_1 = '1023234123812343808';

interface Seen {
  event: string;
  shardId: number;
  sequence: number;
  content?: string;
}

/** Records the session events and messages one app receives. */
@Injectable()
class SessionRecorder {
  readonly seen: Seen[] = [];

  @OnEvent('READY', 'RESUMED', 'MESSAGE_CREATE')
  record(data: unknown, context: GatewayEventContext): void {
    const content = context.event === 'MESSAGE_CREATE' ? (data as { content: string }).content : undefined;
    this.seen.push({ event: context.event, shardId: context.shardId, sequence: context.sequence, ...(content ? { content } : {}) });
  }

  of(shardId: number): Seen[] {
    return this.seen.filter((s) => s.shardId === shardId);
  }
}

const harness = new NestHarness();

void afterEach(async () => {
  await harness.cleanup();
});

async function startApp(gateway: LocalGateway, options: Partial<GatewayModuleOptions>) {
  const app = await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, options))], providers: [SessionRecorder] });
  return { app, recorder: app.get(SessionRecorder), cluster: app.get(ClusterService) };
}

async function storedSessions(store: InMemorySessionStore): Promise<(ShardSession | null)[]> {
  return Promise.all([store.get(0), store.get(1)]);
}

void describe('GatewayModule lifecycle', () => {
  void it('closing the app keeps the sessions resumable; the next app with the same store resumes them and gets the missed events', async () => {
    const gateway = await harness.gateway({ shards: 2, guilds: [GUILD_ON_SHARD_0, GUILD_ON_SHARD_1] });
    const store = new InMemorySessionStore();

    const first = await startApp(gateway, { sessionStore: store });
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(2);
    const before = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1, { guildId: GUILD_ON_SHARD_0, content: 'before shutdown' }));
    await eventually(() => first.recorder.seen.some((s) => s.content === 'before shutdown'), 15_000, 'a message before shutdown');
    // An event no handler wants still counts for the sequence the session resumes from.
    const unhandled = gateway.dispatch(0, 'TYPING_START', { channel_id: '1', user_id: '2', timestamp: 3 });
    await eventually(() => first.cluster.info()[0].sequence === unhandled, 15_000, 'the unhandled event sequenced');
    const sessionIds = [gateway.sessionOf(0), gateway.sessionOf(1)];
    const firstConnections = [...gateway.connections];

    await harness.closeApp(first.app);

    // The shards closed with a code that keeps the session, and the store holds both sessions.
    await eventually(() => firstConnections.every((c) => c.closeCode !== null), 15_000, 'connections closed');
    for (const connection of firstConnections) {
      expect(connection.closedByServer).toBe(false);
      expect([1000, 1001]).not.toContain(connection.closeCode);
    }
    const saved = await storedSessions(store);
    expect(saved.map((s) => s?.sessionId)).toEqual(sessionIds);
    expect(before).toBeLessThan(unhandled);
    expect(saved[0]!.sequence).toBe(unhandled);

    // Events arrive while nothing is connected.
    const missed = [
      { shardId: 0, content: 'missed 1', s: gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(2, { guildId: GUILD_ON_SHARD_0, content: 'missed 1' })) },
      { shardId: 1, content: 'missed 2', s: gateway.dispatch(1, 'MESSAGE_CREATE', createMessage(3, { guildId: GUILD_ON_SHARD_1, content: 'missed 2' })) },
      { shardId: 0, content: 'missed 3', s: gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(4, { guildId: GUILD_ON_SHARD_0, content: 'missed 3' })) },
      { shardId: 1, content: 'missed 4', s: gateway.dispatch(1, 'MESSAGE_CREATE', createMessage(5, { guildId: GUILD_ON_SHARD_1, content: 'missed 4' })) },
    ];
    const frameMark = gateway.frames.length;
    const connectionMark = gateway.connections.length;

    const second = await startApp(gateway, { sessionStore: store });
    await eventually(() => second.recorder.seen.filter((s) => s.event === 'RESUMED').length === 2, 15_000, 'two RESUMED');
    expect(second.cluster.allReady).toBe(true);

    const handshakes = gateway.frames.slice(frameMark).filter((f) => f.op === GatewayOpcodes.Identify || f.op === GatewayOpcodes.Resume);
    expect(handshakes.map((f) => f.op)).toEqual([GatewayOpcodes.Resume, GatewayOpcodes.Resume]);
    expect(handshakes.map((f) => f.d.session_id).sort()).toEqual([...sessionIds].sort());
    expect(handshakes.find((f) => f.d.session_id === sessionIds[0])!.d.seq).toBe(unhandled);
    expect(handshakes.find((f) => f.d.session_id === sessionIds[1])!.d.seq).toBe(saved[1]!.sequence);
    const newConnections = gateway.connections.slice(connectionMark);
    expect(newConnections).toHaveLength(2);
    for (const connection of newConnections) expect(connection.path).toBe('/resume');

    for (const shardId of [0, 1]) {
      const expected = missed.filter((m) => m.shardId === shardId);
      const resumed = gateway.sessionOf(shardId);
      expect(resumed).toBe(sessionIds[shardId]);
      // The missed messages, in order, then RESUMED; nothing from before the shutdown, no READY.
      expect(second.recorder.of(shardId).map((s) => [s.event, s.content, s.sequence])).toEqual([
        ...expected.map((m) => ['MESSAGE_CREATE', m.content, m.s]),
        ['RESUMED', undefined, expected[expected.length - 1].s + 1],
      ]);
    }
    expect(second.recorder.seen.some((s) => s.content === 'before shutdown')).toBe(false);

    // The resumed sessions go on delivering.
    const after = gateway.dispatch(1, 'MESSAGE_CREATE', createMessage(6, { guildId: GUILD_ON_SHARD_1, content: 'after resume' }));
    await eventually(() => second.recorder.seen.some((s) => s.content === 'after resume'), 15_000, 'a message after resume');
    expect(second.recorder.of(1).at(-1)).toEqual({ event: 'MESSAGE_CREATE', shardId: 1, sequence: after, content: 'after resume' });
  });

  void it("with shutdown: 'end-sessions' the shards close with 1000, the store is emptied and the next start identifies", async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const store = new InMemorySessionStore();
    const first = await startApp(gateway, { sessionStore: store, shutdown: 'end-sessions' });
    await eventually(() => first.recorder.seen.filter((s) => s.event === 'READY').length === 2, 15_000, 'two READY');
    let saved: (ShardSession | null)[] = [null, null];
    await eventuallyAsync(async () => (saved = await storedSessions(store)).every((s) => s !== null), 15_000, 'both sessions saved');
    expect(saved.map((s) => s?.sessionId)).toEqual([gateway.sessionOf(0), gateway.sessionOf(1)]);
    const firstConnections = [...gateway.connections];

    await harness.closeApp(first.app);
    await eventually(() => firstConnections.every((c) => c.closeCode !== null), 15_000, 'connections closed');
    expect(firstConnections.map((c) => c.closeCode)).toEqual([1000, 1000]);
    expect(await storedSessions(store)).toEqual([null, null]);
    // The gateway ended the sessions too.
    expect(() => gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1, { content: 'nobody' }))).toThrow(/no session/);

    const frameMark = gateway.frames.length;
    const second = await startApp(gateway, { sessionStore: store });
    const handshakes = gateway.frames.slice(frameMark).filter((f) => f.op === GatewayOpcodes.Identify || f.op === GatewayOpcodes.Resume);
    expect(handshakes.map((f) => f.op)).toEqual([GatewayOpcodes.Identify, GatewayOpcodes.Identify]);
    expect(second.cluster.info().map((s) => s.state)).toEqual([ShardState.Ready, ShardState.Ready]);
    await eventually(() => second.recorder.seen.filter((s) => s.event === 'READY').length >= 2, 15_000, 'two READY handled');
    expect(second.recorder.seen.filter((s) => s.event === 'READY').map((s) => s.shardId).sort()).toEqual([0, 1]);
  });
});
