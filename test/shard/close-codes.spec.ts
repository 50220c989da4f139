import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import { GatewayFatalError, InMemoryIdentifyQueue, Shard, ShardState, type ShardOptions } from '../../lib/nest';
import type { LocalGateway, LocalGatewayOptions } from '../../lib/nest/testing';
import {
  collectDispatches,
  createShard,
  eventually,
  nextDispatch,
  startGateway,
  waitFor,
  waitForState,
} from '../helpers/gateway-test-kit';

let gateway: LocalGateway | null = null;
let shard: Shard | null = null;

async function setup(
  gatewayOptions: LocalGatewayOptions = {},
  shardOptions: Partial<ShardOptions> = {},
): Promise<{ gateway: LocalGateway; shard: Shard }> {
  gateway = await startGateway(gatewayOptions);
  shard = createShard(gateway, { random: () => 0.5, ...shardOptions });
  return { gateway, shard };
}

/**
 * A shard that is ready on a fresh session. Its identify queue uses a short window, so that a second IDENTIFY
 * does not wait Discord's 5 s.
 */
async function readyShard(): Promise<{ gateway: LocalGateway; shard: Shard }> {
  const kit = await setup({}, { identifyQueue: new InMemoryIdentifyQueue({ windowMs: 50 }) });
  await kit.shard.connect();
  expect(kit.shard.state).toBe(ShardState.Ready);
  return kit;
}

/**
 * The reconnects `target` schedules from now on, as its debug lines say ("reconnect attempt N in M ms"). A shard
 * decides whether to reconnect when its connection closes and says so at once, so once it is fatally closed, an
 * empty list proves that no reconnect is coming.
 */
function scheduledReconnects(target: Shard): string[] {
  const lines: string[] = [];
  target.debug$.subscribe((line) => {
    if (/reconnect attempt/.test(line)) lines.push(line);
  });
  return lines;
}

/** Resolves with the first GatewayFatalError the shard reports on error$. */
function nextFatal(target: Shard, ms = 5_000): Promise<GatewayFatalError> {
  return waitFor(target.error$, (e) => e instanceof GatewayFatalError, ms) as Promise<GatewayFatalError>;
}

void afterEach(async () => {
  if (shard) await shard.close();
  if (gateway) await gateway.close();
  shard = null;
  gateway = null;
});

void describe('close codes that resume the session', () => {
  interface ResumeCase {
    name: string;
    code: number;
    cut: (g: LocalGateway) => void;
  }
  const cases: ResumeCase[] = [
    ...[4000, 4001, 4002, 4008, 4999, 3000].map((code) => ({
      name: `close code ${code}`,
      code,
      cut: (g: LocalGateway) => g.closeShard(0, code, `closed with ${code}`),
    })),
    { name: 'a dropped TCP connection with no close frame', code: 1006, cut: (g: LocalGateway) => g.dropShard(0) },
  ];

  for (const { name, code, cut } of cases) {
    void it(`${name}: reconnects to the resume URL and resumes, without identifying again`, async () => {
      const { gateway, shard } = await readyShard();
      const sessionId = shard.session!.sessionId;
      gateway.dispatch(0, 'MESSAGE_CREATE', { id: 'before-close' });
      await nextDispatch(shard, 'MESSAGE_CREATE');
      const seqBeforeClose = shard.info().sequence!;
      const connectionsBefore = gateway.connections.length;
      const framesBefore = gateway.frames.length;
      const collected = collectDispatches(shard);
      const resumed = nextDispatch(shard, 'RESUMED');

      cut(gateway);
      // Sent while the shard has no connection: the server keeps it for the RESUME replay.
      const missedSeq = gateway.dispatch(0, 'MESSAGE_CREATE', { id: 'while-away' });
      await resumed;
      collected.stop();

      expect(shard.state).toBe(ShardState.Ready);
      expect(shard.info().lastClose?.code).toBe(code);
      expect(shard.session?.sessionId).toBe(sessionId);

      const newFrames = gateway.frames.slice(framesBefore);
      const resumes = newFrames.filter((f) => f.op === GatewayOpcodes.Resume);
      expect(resumes).toHaveLength(1);
      expect(resumes[0].d).toMatchObject({ session_id: sessionId, seq: seqBeforeClose, token: gateway.token });
      expect(newFrames.filter((f) => f.op === GatewayOpcodes.Identify)).toHaveLength(0);
      expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);

      const resumeConnection = gateway.connections.find((c) => c.id === resumes[0].connectionId)!;
      expect(resumeConnection.id).toBeGreaterThan(connectionsBefore);
      expect(resumeConnection.path).toBe('/resume');
      expect(resumeConnection.query.get('v')).toBe('10');

      // The missed event is replayed before RESUMED, with no gap in the sequence.
      expect(collected.events.map((e) => [e.t, e.s])).toEqual([
        ['MESSAGE_CREATE', missedSeq],
        ['RESUMED', missedSeq + 1],
      ]);
      expect(missedSeq).toBe(seqBeforeClose + 1);
    });
  }
});

void describe('close codes that start a new session', () => {
  for (const code of [4003, 4005, 4007, 4009]) {
    void it(
      `close code ${code}: identifies again on the gateway URL and gets a new session`,
      async () => {
        const { gateway, shard } = await readyShard();
        const oldSessionId = shard.session!.sessionId;
        gateway.dispatch(0, 'MESSAGE_CREATE', { id: 'old-session' });
        await nextDispatch(shard, 'MESSAGE_CREATE');
        const framesBefore = gateway.frames.length;
        const ready = nextDispatch(shard, 'READY');

        gateway.closeShard(0, code, `closed with ${code}`);
        const readyEvent = await ready;

        expect(shard.state).toBe(ShardState.Ready);
        expect(shard.info().lastClose?.code).toBe(code);
        const newFrames = gateway.frames.slice(framesBefore);
        expect(newFrames.filter((f) => f.op === GatewayOpcodes.Resume)).toHaveLength(0);
        const identifies = newFrames.filter((f) => f.op === GatewayOpcodes.Identify);
        expect(identifies).toHaveLength(1);
        const identifyConnection = gateway.connections.find((c) => c.id === identifies[0].connectionId)!;
        expect(identifyConnection.path).toBe('/');

        const newSessionId = shard.session!.sessionId;
        expect(newSessionId).not.toBe(oldSessionId);
        expect(newSessionId).toBe(gateway.sessionOf(0));
        expect((readyEvent.d as { session_id: string }).session_id).toBe(newSessionId);
        // The new session counts from its own READY, not from the old session's sequence.
        expect(shard.info().sequence).toBe(readyEvent.s);
        expect(readyEvent.s).toBe(1);
      },
    );
  }
});

void describe('fatal close codes', () => {
  const cases: { code: number; words: RegExp[] }[] = [
    { code: 4004, words: [/authentication/i, /token/i] },
    { code: 4010, words: [/invalid shard/i] },
    { code: 4011, words: [/sharding required/i] },
    { code: 4012, words: [/API version/i] },
    { code: 4013, words: [/invalid intents/i] },
    { code: 4014, words: [/disallowed intents/i, /developer portal/i] },
  ];

  for (const { code, words } of cases) {
    void it(
      `close code ${code}: the shard closes for good, rejects connect() and reports a GatewayFatalError`,
      async () => {
        const { gateway } = await setup();
        const target = shard!;
        // IDENTIFY goes unanswered, so connect() is still pending when the fatal close arrives.
        gateway.behaviour.answerHandshake = false;
        const fatalReported = nextFatal(target);
        const reconnects = scheduledReconnects(target);
        const connecting = target.connect();
        await gateway.waitForFrame((f) => f.op === GatewayOpcodes.Identify, 15_000, 0);

        gateway.closeShard(0, code, 'fatal');

        const error = await connecting.then(
          () => {
            throw new Error('connect() resolved after a fatal close');
          },
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(GatewayFatalError);
        const fatal = error as GatewayFatalError;
        expect(fatal.code).toBe(code);
        expect(fatal.shardId).toBe(0);
        for (const word of words) expect(fatal.message).toMatch(word);
        expect(fatal.message).not.toContain(gateway.token);
        expect(await fatalReported).toBe(fatal);
        expect(target.fatalError).toBe(fatal);
        expect(target.state).toBe(ShardState.FatallyClosed);
        expect(target.session).toBeNull();
        expect(target.info().lastError).toBe(fatal.message);

        expect(reconnects).toEqual([]);
        expect(gateway.connections).toHaveLength(1);
      },
    );
  }

  void it('a fatal close of a ready shard is reported on error$, and later connect() and send() reject with it', async () => {
    const { gateway, shard } = await readyShard();
    const fatalReported = nextFatal(shard);
    const closed = waitForState(shard, ShardState.FatallyClosed);
    const reconnects = scheduledReconnects(shard);

    gateway.closeShard(0, 4014, 'Disallowed intent(s).');
    const fatal = await fatalReported;
    await closed;

    expect(fatal.code).toBe(4014);
    expect(fatal.message).toMatch(/disallowed intents/i);
    expect(fatal.message).toMatch(/developer portal/i);
    expect(shard.fatalError).toBe(fatal);
    await expect(shard.connect()).rejects.toBe(fatal);
    await expect(
      shard.send({
        op: GatewayOpcodes.PresenceUpdate,
        d: { since: null, activities: [], status: PresenceUpdateStatus.Online, afk: false },
      }),
    ).rejects.toBe(fatal);

    expect(reconnects).toEqual([]);
    expect(gateway.connections).toHaveLength(1);
    expect(shard.state).toBe(ShardState.FatallyClosed);
  });
});

void describe('fatal closes caused by what the shard sends', () => {
  interface ValidationCase {
    name: string;
    code: number;
    gatewayOptions: LocalGatewayOptions;
    shardOptions: (g: LocalGateway) => Partial<ShardOptions>;
    words: RegExp[];
  }
  const cases: ValidationCase[] = [
    {
      name: 'a wrong token',
      code: 4004,
      gatewayOptions: {},
      shardOptions: () => ({ token: 'not-the-right-token' }),
      words: [/authentication/i],
    },
    {
      name: 'a privileged intent the bot may not use',
      code: 4014,
      gatewayOptions: { allowedPrivilegedIntents: 0 },
      shardOptions: () => ({ intents: (1 << 0) | (1 << 1) }),
      words: [/disallowed intents/i, /developer portal/i],
    },
    {
      name: 'an unknown intent bit',
      code: 4013,
      gatewayOptions: {},
      shardOptions: () => ({ intents: (1 << 0) | (1 << 30) }),
      words: [/invalid intents/i],
    },
  ];

  for (const c of cases) {
    void it(`${c.name}: the gateway closes with ${c.code} and the shard stops for good`, async () => {
      gateway = await startGateway(c.gatewayOptions);
      shard = createShard(gateway, { random: () => 0.5, ...c.shardOptions(gateway) });
      const target = shard;
      const fatalReported = nextFatal(target);
      const reconnects = scheduledReconnects(target);

      const error = await target.connect().then(
        () => {
          throw new Error('connect() resolved although the gateway refused the IDENTIFY');
        },
        (e: unknown) => e,
      );

      expect(error).toBeInstanceOf(GatewayFatalError);
      const fatal = error as GatewayFatalError;
      expect(fatal.code).toBe(c.code);
      for (const word of c.words) expect(fatal.message).toMatch(word);
      expect(fatal.message).not.toContain('not-the-right-token');
      expect(await fatalReported).toBe(fatal);
      expect(target.fatalError).toBe(fatal);
      expect(target.state).toBe(ShardState.FatallyClosed);
      expect(target.info().lastClose?.code).toBe(c.code);
      expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);
      expect(gateway.connections).toHaveLength(1);

      expect(reconnects).toEqual([]);
    });
  }

  void it('a fatally closed shard stays closed: connect() rejects at once without opening a connection', async () => {
    gateway = await startGateway();
    shard = createShard(gateway, { token: 'not-the-right-token' });
    const target = shard;
    await expect(target.connect()).rejects.toBeInstanceOf(GatewayFatalError);
    await eventually(() => gateway!.connections.length === 1, 15_000, 'the refused connection');

    // Opening a connection starts with the connecting state, at once: the shard never left its fatal state.
    const states: ShardState[] = [];
    target.state$.subscribe((state) => states.push(state));
    await expect(target.connect()).rejects.toBe(target.fatalError);
    expect(states.filter((state) => state !== ShardState.FatallyClosed)).toEqual([]);
    expect(gateway.connections).toHaveLength(1);
  });
});
