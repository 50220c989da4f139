import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes, PresenceUpdateStatus, type GatewayUpdatePresence } from 'discord-api-types/v10';
import { firstValueFrom, filter, timeout, type Observable } from 'rxjs';
import {
  DispatchFilter,
  GatewayFatalError,
  InMemorySessionStore,
  ShardCommandError,
  ShardState,
  type ClusterOptions,
  type GatewayDispatch,
  type IGatewayShard,
  type ShardSession,
} from '../../lib/core';
import { createMessage, createTypingStart, type LocalGateway } from '../../lib/nest/testing';
import { ClusterHarness } from '../helpers/cluster-test-kit';

/** Heartbeats far apart: these tests are not about them, and a 60 s command window leaves a fixed budget. */
const HEARTBEAT_MS = 30_000;
/** 10 frames a minute: 4 reserved for heartbeats, 1 for the IDENTIFY, 5 left for commands. */
const COMMAND_RATE_LIMIT = { limit: 10, windowMs: 60_000 };
const COMMANDS_AFTER_IDENTIFY = 5;

/** A session store that records every session written. */
class RecordingSessionStore extends InMemorySessionStore {
  readonly written: ShardSession[] = [];

  override async set(shardId: number, session: ShardSession): Promise<void> {
    this.written.push({ ...session });
    await super.set(shardId, session);
  }
}

interface Running {
  gateway: LocalGateway;
  /** Shard 0, through the contract only. */
  shard: IGatewayShard;
  /** Every event of the cluster's merged stream, as `t#s`. */
  clusterEvents: string[];
  store: RecordingSessionStore;
  dispatch$: Observable<GatewayDispatch>;
}

function presence(status: PresenceUpdateStatus): GatewayUpdatePresence {
  return { op: GatewayOpcodes.PresenceUpdate, d: { since: null, activities: [], status, afk: false } };
}

/** The first value of `source` that matches; subscribe before causing it. */
function next<T>(source: Observable<T>, predicate: (value: T) => boolean): Promise<T> {
  return firstValueFrom(source.pipe(filter(predicate), timeout({ first: 10_000 })));
}

/**
 * The shard contract ({@link IGatewayShard}), written once and run against every sharding strategy: whatever runs
 * the shard, its events, counters, pending commands, info, errors and commands behave the same.
 */
function shardContract(name: string, strategy: ClusterOptions['strategy']): void {
  void describe(`Shard contract: ${name}`, () => {
    const harness = new ClusterHarness({ heartbeatInterval: HEARTBEAT_MS });

    afterEach(() => harness.closeAll());

    async function start(options: Partial<ClusterOptions> = {}): Promise<Running> {
      const gateway = await harness.gatewayWith({ shards: 1 });
      const store = new RecordingSessionStore();
      const cluster = harness.clusterOn(gateway, { strategy, sessionStore: store, commandRateLimit: COMMAND_RATE_LIMIT, ...options });
      const clusterEvents: string[] = [];
      cluster.dispatch$.subscribe((event) => clusterEvents.push(`${event.t}#${event.s}`));
      await cluster.up();
      return { gateway, shard: cluster.shards.get(0)!, clusterEvents, store, dispatch$: cluster.dispatch$ };
    }

    void it('delivers every dispatch in order, RESUMED included, and saves the session on READY and RESUMED', async () => {
      const { gateway, shard, clusterEvents, store, dispatch$ } = await start();
      const shardEvents: string[] = [];
      shard.dispatch$.subscribe((event) => shardEvents.push(`${event.t}#${event.s}`));

      const second = next(dispatch$, (e) => e.t === 'MESSAGE_CREATE');
      expect(gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1))).toBe(2);
      await second;
      const resumed = gateway.waitForReady(0);
      gateway.reconnect(0);
      await resumed;
      const fourth = next(dispatch$, (e) => e.s === 4);
      expect(gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(2))).toBe(4);
      await fourth;

      expect(clusterEvents).toEqual(['READY#1', 'MESSAGE_CREATE#2', 'RESUMED#3', 'MESSAGE_CREATE#4']);
      expect(shardEvents).toEqual(['MESSAGE_CREATE#2', 'RESUMED#3', 'MESSAGE_CREATE#4']);
      const sessionId = gateway.sessionOf(0);
      expect(store.written.map((s) => [s.sessionId, s.sequence])).toEqual([
        [sessionId, 1],
        [sessionId, 3],
      ]);
      expect(shard.session).toMatchObject({ sessionId, sequence: 4 });
    });

    void it('forwards the events the filter forwards as the payload bytes, in order with dispatch$, each once', async () => {
      const filter = new DispatchFilter(['MESSAGE_CREATE']);
      filter.forward('TYPING_START');
      const { gateway, shard } = await start({ dispatchFilter: filter });
      const order: string[] = [];
      const frames: string[] = [];
      shard.dispatch$.subscribe((event) => order.push(`${event.t}#${event.s}`));
      shard.forwarded$.subscribe((event) => {
        order.push(`forwarded ${event.t}#${event.s} ${event.sessionId}`);
        frames.push(event.frame.toString());
      });
      const typing = createTypingStart(1, '81384788765712384');
      gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1));
      const first = gateway.dispatch(0, 'TYPING_START', typing);
      gateway.dispatch(0, 'GUILD_MEMBER_UPDATE', { guild_id: '1' });
      const resumed = next(shard.dispatch$, (e) => e.t === 'RESUMED');
      gateway.reconnect(0);
      await resumed;
      const last = next(shard.forwarded$, () => true);
      const second = gateway.dispatch(0, 'TYPING_START', typing);
      await last;

      const sessionId = gateway.sessionOf(0);
      expect(order).toEqual(['MESSAGE_CREATE#2', `forwarded TYPING_START#3 ${sessionId}`, 'RESUMED#5', `forwarded TYPING_START#6 ${sessionId}`]);
      expect(frames).toEqual([first, second].map((s) => JSON.stringify({ op: 0, t: 'TYPING_START', s, d: typing })));
      expect(shard.session).toMatchObject({ sessionId, sequence: 6 });
      expect(shard.counters.eventsByType.get('TYPING_START')).toBe(2);
    });

    void it('counts received events (skipped ones too), handshakes, reconnects and bytes', async () => {
      const { gateway, shard, dispatch$ } = await start({ dispatchFilter: new DispatchFilter(['MESSAGE_CREATE']) });
      gateway.dispatch(0, 'TYPING_START', createTypingStart(1, '81384788765712384'));
      const first = next(dispatch$, (e) => e.t === 'MESSAGE_CREATE');
      gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(1));
      await first;
      const resumed = next(dispatch$, (e) => e.t === 'RESUMED');
      gateway.reconnect(0);
      await resumed;
      const last = next(dispatch$, (e) => e.t === 'MESSAGE_CREATE');
      const sequence = gateway.dispatch(0, 'MESSAGE_CREATE', createMessage(2));
      await last;

      const counters = shard.counters;
      expect(Object.fromEntries(counters.eventsByType)).toEqual({ READY: 1, TYPING_START: 1, MESSAGE_CREATE: 2, RESUMED: 1 });
      expect(Object.fromEntries(counters.reconnectsByReason)).toEqual({ 'reconnect-request': 1 });
      expect(counters.identifies).toBe(1);
      expect(counters.resumes).toBe(1);
      expect(counters.commandsSent).toBe(0);
      expect(counters.receivedBytes).toBeGreaterThan(0);
      expect(counters.payloadBytes).toBeGreaterThan(0);
      expect(shard.info().sequence).toBe(sequence);
    });

    void it('keeps its counters across a close and a new connect, which resumes', async () => {
      const { gateway, shard } = await start();
      await shard.send(presence(PresenceUpdateStatus.Idle));
      const session = await shard.close({ resumable: true });
      expect(session).toMatchObject({ sessionId: gateway.sessionOf(0), sequence: 1 });
      const resumed = next(shard.dispatch$, (e) => e.t === 'RESUMED');
      await shard.connect();
      await resumed;

      expect(gateway.framesOf(GatewayOpcodes.Resume, 0)).toHaveLength(1);
      const counters = shard.counters;
      expect(Object.fromEntries(counters.eventsByType)).toEqual({ READY: 1, RESUMED: 1 });
      expect(counters.identifies).toBe(1);
      expect(counters.resumes).toBe(1);
      expect(counters.commandsSent).toBe(1);
      expect(shard.info()).toMatchObject({ state: ShardState.Ready, sequence: 2 });
    });

    void it('counts pending and sent commands, refuses bad ones and rejects those left at close', async () => {
      const { gateway, shard } = await start();
      expect(shard.commandBudget().remaining).toBe(COMMANDS_AFTER_IDENTIFY);
      expect(shard.pendingCommands).toBe(0);

      const sends = Array.from({ length: COMMANDS_AFTER_IDENTIFY + 2 }, () => shard.send(presence(PresenceUpdateStatus.Idle)));
      const outcomes = sends.map((send) => send.then(() => null, (error: Error) => error));
      await Promise.all(sends.slice(0, COMMANDS_AFTER_IDENTIFY));
      expect(shard.pendingCommands).toBe(2);
      expect(shard.counters.commandsSent).toBe(COMMANDS_AFTER_IDENTIFY);
      expect(shard.commandBudget().remaining).toBe(0);
      let presences = 0;
      await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate && ++presences === COMMANDS_AFTER_IDENTIFY, 5_000, 0);
      expect(gateway.framesOf(GatewayOpcodes.PresenceUpdate, 0)).toHaveLength(COMMANDS_AFTER_IDENTIFY);

      const managed = await shard.send({ op: GatewayOpcodes.Heartbeat, d: null } as never).catch((error: Error) => error);
      expect(managed).toBeInstanceOf(ShardCommandError);
      const tooBig = presence(PresenceUpdateStatus.Online);
      tooBig.d.activities = [{ name: 'x'.repeat(5_000), type: 0 }];
      const oversized = await shard.send(tooBig).catch((error: Error) => error);
      expect(oversized).toBeInstanceOf(ShardCommandError);
      expect((oversized as ShardCommandError).shardId).toBe(0);
      expect(shard.pendingCommands).toBe(2);

      await shard.close();
      const left = (await Promise.all(outcomes)).slice(COMMANDS_AFTER_IDENTIFY);
      for (const error of left) {
        expect(error).toBeInstanceOf(ShardCommandError);
        expect(error!.message).toContain('closed before this could complete');
      }
      expect(shard.pendingCommands).toBe(0);
      expect(shard.state).toBe(ShardState.Disconnected);
    });

    void it('reports errors, states, debug lines and info as it recovers', async () => {
      const { gateway, shard } = await start();
      const states: ShardState[] = [];
      shard.state$.subscribe((state) => states.push(state));
      const debug: string[] = [];
      shard.debug$.subscribe((line) => debug.push(line));
      const info = shard.info();
      expect(info).toMatchObject({ id: 0, total: 1, state: ShardState.Ready, sequence: 1, sessionId: gateway.sessionOf(0), reconnectAttempts: 0, lastClose: null });

      const error = next(shard.error$, () => true);
      const firstResume = next(shard.dispatch$, (e) => e.t === 'RESUMED');
      gateway.sendInvalidJson(0);
      expect((await error).message).toContain('not valid JSON');
      await firstResume;
      expect(shard.info()).toMatchObject({ state: ShardState.Ready, sequence: 2, reconnectAttempts: 1 });
      expect(shard.info().lastError).toContain('not valid JSON');

      const secondResume = next(shard.dispatch$, (e) => e.t === 'RESUMED');
      gateway.closeShard(0, 4000, 'bye');
      await secondResume;
      expect(shard.info()).toMatchObject({ state: ShardState.Ready, sequence: 3, lastClose: { code: 4000, reason: 'bye' } });
      const cycle = [ShardState.Disconnected, ShardState.Connecting, ShardState.Resuming, ShardState.Ready];
      expect(states).toEqual([ShardState.Ready, ...cycle, ...cycle]);
      expect(debug.some((line) => line.includes('resuming session'))).toBe(true);
      for (const line of debug) expect(line).not.toContain(gateway.token);

      const fatal = next(shard.error$, (e) => e instanceof GatewayFatalError);
      gateway.closeShard(0, 4004, 'Authentication failed.');
      const reported = await fatal;
      expect(reported).toMatchObject({ shardId: 0, code: 4004 });
      expect(shard.state).toBe(ShardState.FatallyClosed);
      expect(shard.fatalError).toBeInstanceOf(GatewayFatalError);
      expect(await shard.connect().catch((e: Error) => e)).toBeInstanceOf(GatewayFatalError);
    });
  });
}

shardContract('in-process shard', { type: 'in-process' });
shardContract('worker-thread shard', { type: 'workers' });
