import { describe, it, before, after } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import Redis from 'ioredis';
import { redisKey, shardLeaseKey } from '../../lib/redis';
import { createMessage, type LocalGateway, type LocalGatewayConnection } from '../../lib/nest/testing';
import { eventually, eventuallyAsync, startGateway } from '../helpers/gateway-test-kit';
import { overlappingConnections } from '../helpers/gateway-connections';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { BotProcess, spawnBotProcess, type HandledEvent } from './fixtures/bot-process';

const TOTAL = 12;
const MAX_CONCURRENCY = 2;
const LEASE_TTL_MS = 2_000;
const RENEW_INTERVAL_MS = Math.floor(LEASE_TTL_MS / 3);
const IDENTIFY_WINDOW_MS = 300;
const SESSION_SAVE_INTERVAL_MS = 300;
const KEY_PREFIX = `ndg-test:ownership:${process.pid}`;

let redisServer: RunningRedisServer;
let redis: Redis;
let gateway: LocalGateway;
const processes: BotProcess[] = [];

function startProcess(memberId: string): BotProcess {
  const config = {
    apiUrl: gateway.apiUrl,
    token: gateway.token,
    redisUrl: redisServer.url,
    keyPrefix: KEY_PREFIX,
    total: TOTAL,
    memberId,
    leaseTtlMs: LEASE_TTL_MS,
    identifyWindowMs: IDENTIFY_WINDOW_MS,
    sessionSaveIntervalMs: SESSION_SAVE_INTERVAL_MS,
  };
  const bot = spawnBotProcess(config);
  processes.push(bot);
  return bot;
}

/** The member holding each shard's lease (null when free), as Redis has it now. */
async function leaseOwners(): Promise<(string | null)[]> {
  const keys = Array.from({ length: TOTAL }, (_, id) => shardLeaseKey(KEY_PREFIX, id));
  const tokens = await redis.mget(keys);
  return tokens.map((token) => (token === null ? null : token.slice(0, token.lastIndexOf('|'))));
}

async function shardsOf(memberId: string): Promise<number[]> {
  return (await leaseOwners()).flatMap((owner, id) => (owner === memberId ? [id] : []));
}

/** The open connection of a shard whose IDENTIFY or RESUME was accepted, if any. */
function liveConnection(shardId: number): LocalGatewayConnection | undefined {
  const connection = gateway.connectionOf(shardId);
  return connection?.handshakeDone ? connection : undefined;
}

/**
 * Waits until `members` share the shards evenly in Redis and every shard has one live connection, and it stays so
 * for a little while (no hand-over under way).
 */
async function waitForBalance(members: BotProcess[], ms = 30_000): Promise<void> {
  const ids = members.map((m) => m.memberId);
  const balanced = async () => {
    const owners = await leaseOwners();
    if (owners.some((owner) => owner === null || !ids.includes(owner))) return false;
    if (ids.some((id) => owners.filter((owner) => owner === id).length !== TOTAL / ids.length)) return false;
    return Array.from({ length: TOTAL }, (_, id) => id).every((id) => liveConnection(id) !== undefined);
  };
  // Balanced in Redis and on the gateway, and still so two renewals later (lease state lives in Redis: polled).
  let stableSince: number | null = null;
  const stable = async () => {
    if (!(await balanced())) {
      stableSince = null;
      return false;
    }
    stableSince ??= Date.now();
    return Date.now() - stableSince >= 2 * RENEW_INTERVAL_MS;
  };
  try {
    await eventuallyAsync(stable, ms, 'balanced shards');
  } catch {
    const owners = await leaseOwners();
    throw new Error(
      `Shards not balanced over ${ids.join(', ')} within ${ms} ms; leases: ${JSON.stringify(owners)}\n` +
        members.map((m) => m.describe()).join('\n'),
    );
  }
}

/** Dispatches `count` MESSAGE_CREATEs to each shard; returns their sequence numbers by shard. */
function dispatchMessages(shardIds: number[], count: number): Map<number, number[]> {
  const sent = new Map<number, number[]>();
  for (const shardId of shardIds) {
    const sequences: number[] = [];
    for (let i = 0; i < count; i++) sequences.push(gateway.dispatch(shardId, 'MESSAGE_CREATE', createMessage(shardId * 1_000 + i)));
    sent.set(shardId, sequences);
  }
  return sent;
}

function allEvents(): (HandledEvent & { by: string })[] {
  return processes.flatMap((p) => p.events.map((event) => ({ ...event, by: p.memberId })));
}

/** Waits until every dispatched sequence has been handled by some process; returns who handled each. */
async function waitForHandled(sent: Map<number, number[]>, ms = 10_000): Promise<Map<string, string>> {
  const key = (shardId: number, sequence: number) => `${shardId}#${sequence}`;
  const wanted = [...sent].flatMap(([shardId, sequences]) => sequences.map((s) => key(shardId, s)));
  let handledBy = new Map<string, string>();
  await eventually(
    () => {
      handledBy = new Map(allEvents().map((e) => [key(e.shardId, e.sequence), e.by]));
      return wanted.every((k) => handledBy.has(k));
    },
    ms,
    `handling of ${wanted.length} dispatched events`,
  );
  return handledBy;
}

/** No event was handled twice, by one process or by two. */
function expectNoDuplicateDelivery(): void {
  const seen = new Map<string, string>();
  const duplicates: string[] = [];
  for (const event of allEvents()) {
    const key = `shard ${event.shardId} #${event.sequence}`;
    if (seen.has(key)) duplicates.push(`${key} (by ${seen.get(key)} and ${event.by})`);
    seen.set(key, event.by);
  }
  expect(duplicates).toEqual([]);
}

/** Every MESSAGE_CREATE handled for a shard, in handling order across processes, has a higher sequence than the last. */
function expectSequencesIncrease(shardIds: number[]): void {
  for (const shardId of shardIds) {
    const sequences = allEvents()
      .filter((e) => e.shardId === shardId)
      .map((e) => e.sequence)
      .sort((a, b) => a - b);
    expect(new Set(sequences).size).toBe(sequences.length);
  }
}

/** No shard ever had two connections at once whose IDENTIFY or RESUME was accepted. */
function expectNoOverlappingConnections(): void {
  expect(overlappingConnections(gateway)).toEqual([]);
}

function framesAfter(op: number, at: number): { shardId: number | null; at: number; connectionId: number; d: any }[] {
  return gateway.frames.filter((f) => f.op === op && f.at >= at);
}

/** The session id the newest accepted handshake of a shard carried (READY's for IDENTIFY, the resumed one for RESUME). */
function sessionOfLive(shardId: number): string | null {
  return liveConnection(shardId)?.sessionId ?? null;
}

void describe('Shard ownership across processes (Redis leases)', { timeout: 90_000 }, () => {
  let a: BotProcess;
  let b: BotProcess;
  let c: BotProcess;

  before(async () => {
    redisServer = await startRedisServer();
    redis = new Redis(redisServer.url);
    gateway = await startGateway({
      shards: TOTAL,
      identifyWindowMs: IDENTIFY_WINDOW_MS,
      sessionStartLimit: { max_concurrency: MAX_CONCURRENCY },
    });
    a = startProcess('member-a');
    b = startProcess('member-b');
    c = startProcess('member-c');
  });

  after(async () => {
    for (const bot of processes) {
      if (bot.alive) process.kill(bot.pid, 'SIGKILL');
    }
    await Promise.all(processes.map((bot) => bot.exited));
    redis?.disconnect();
    await gateway?.close();
    await redisServer?.stop();
  });

  void it('three processes share the 12 shards: each shard is owned and connected once, IDENTIFYs keep the bucket window', async () => {
    await waitForBalance([a, b, c]);
    for (const bot of [a, b, c]) expect(await shardsOf(bot.memberId)).toHaveLength(TOTAL / 3);

    expect(gateway.identifyViolations).toBe(0);
    const identifies = gateway.framesOf(GatewayOpcodes.Identify);
    expect(new Set(identifies.map((f) => f.shardId))).toEqual(new Set(Array.from({ length: TOTAL }, (_, id) => id)));
    for (let key = 0; key < MAX_CONCURRENCY; key++) {
      const times = identifies.filter((f) => f.shardId! % MAX_CONCURRENCY === key).map((f) => f.at);
      for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(IDENTIFY_WINDOW_MS);
    }
    expectNoOverlappingConnections();

    // Each shard's events reach the process that holds its lease, once.
    const sent = dispatchMessages(Array.from({ length: TOTAL }, (_, id) => id), 1);
    const handledBy = await waitForHandled(sent);
    const owners = await leaseOwners();
    for (const [shardId, [sequence]] of sent) expect(handledBy.get(`${shardId}#${sequence}`)).toBe(owners[shardId]);
    expectNoDuplicateDelivery();
  });

  void it('a presence update sent through one process reaches the connection of a shard another process owns', async () => {
    const target = (await shardsOf(b.memberId))[0];
    expect(await shardsOf(a.memberId)).not.toContain(target);
    const from = gateway.frames.length;
    const reply = await a.presence(target, 'idle');
    expect(reply).toEqual({ type: 'reply', id: expect.any(Number), ok: true });
    const frame = await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 15_000, from);
    expect(frame.d.status).toBe('idle');
    expect(frame.connectionId).toBe(liveConnection(target)!.id);
    expect(frame.shardId).toBe(target);
  });

  void it('kill -9 of a process: the others RESUME its shards within the lease TTL, with no gap and no duplicate', async (t) => {
    const victimShards = await shardsOf(b.memberId);
    const sessions = new Map(victimShards.map((id) => [id, sessionOfLive(id)]));
    const before = dispatchMessages(victimShards, 3);
    await waitForHandled(before);
    // The store has the sequence of every handled event (saved sessions live in Redis: polled).
    const savedSequence = async (shardId: number) => {
      const raw = await redis.get(redisKey(KEY_PREFIX, 'session', shardId));
      return raw === null ? -1 : (JSON.parse(raw) as { sequence: number }).sequence;
    };
    await eventuallyAsync(
      async () => (await Promise.all(victimShards.map(async (id) => (await savedSequence(id)) >= Math.max(...before.get(id)!)))).every(Boolean),
      15_000,
      'the handled sequences saved',
    );

    const killedAt = Date.now();
    process.kill(b.pid, 'SIGKILL');
    expect((await b.exited).signal).toBe('SIGKILL');
    // Dispatched while nobody holds the shards: replayed on RESUME.
    const during = dispatchMessages(victimShards, 2);

    await waitForBalance([a, c], 15_000);
    const resumes = framesAfter(GatewayOpcodes.Resume, killedAt).filter((f) => victimShards.includes(f.shardId!));
    expect(new Set(resumes.map((f) => f.shardId))).toEqual(new Set(victimShards));
    expect(framesAfter(GatewayOpcodes.Identify, killedAt)).toEqual([]);
    const takeoverMs = Math.max(...resumes.map((f) => f.at)) - killedAt;
    t.diagnostic(`shards of the killed process resumed ${takeoverMs} ms after the kill (lease TTL ${LEASE_TTL_MS} ms)`);
    // The leases expire at most a TTL after the kill and are claimed as they expire; the rest is connect + RESUME.
    expect(takeoverMs).toBeLessThan(LEASE_TTL_MS + 1_000);
    for (const id of victimShards) expect(sessionOfLive(id)).toBe(sessions.get(id));

    const after = dispatchMessages(victimShards, 2);
    const handledBy = await waitForHandled(new Map(victimShards.map((id) => [id, [...during.get(id)!, ...after.get(id)!]])));
    for (const id of victimShards) {
      for (const sequence of [...during.get(id)!, ...after.get(id)!]) expect([a.memberId, c.memberId]).toContain(handledBy.get(`${id}#${sequence}`));
      // No gap: every sequence from the first event through the last was handled.
      const handled = allEvents().filter((e) => e.shardId === id && e.sequence >= before.get(id)![0]);
      expect(handled.map((e) => e.sequence).sort((x, y) => x - y)).toEqual([...before.get(id)!, ...during.get(id)!, ...after.get(id)!]);
      expect(new Set(handled.filter((e) => e.by !== b.memberId).map((e) => e.sessionId))).toEqual(new Set([sessions.get(id)]));
    }
    expectNoDuplicateDelivery();
    expectSequencesIncrease(victimShards);
    expectNoOverlappingConnections();
  });

  void it('a process that joins takes its share over gracefully: resumable close, then RESUME on the newcomer', async () => {
    const joinedAt = Date.now();
    const sessionsBefore = new Map(Array.from({ length: TOTAL }, (_, id) => [id, sessionOfLive(id)]));
    const liveBefore = new Map(Array.from({ length: TOTAL }, (_, id) => [id, liveConnection(id)!]));
    const d = startProcess('member-d');
    await waitForBalance([a, c, d]);

    const moved = await shardsOf(d.memberId);
    expect(moved).toHaveLength(TOTAL / 3);
    expect(framesAfter(GatewayOpcodes.Identify, joinedAt)).toEqual([]);
    for (const id of moved) {
      // The old owner closed resumably (4200), and the newcomer resumed the same session.
      expect(liveBefore.get(id)!.closeCode).toBe(4200);
      const resume = liveConnection(id)!.frames.find((f) => f.op === GatewayOpcodes.Resume);
      expect(resume?.d.session_id).toBe(sessionsBefore.get(id));
    }
    const sent = dispatchMessages(moved, 2);
    const handledBy = await waitForHandled(sent);
    for (const [id, sequences] of sent) for (const s of sequences) expect(handledBy.get(`${id}#${s}`)).toBe(d.memberId);
    expectNoDuplicateDelivery();
    expectSequencesIncrease(moved);
    expectNoOverlappingConnections();
    expect(gateway.identifyViolations).toBe(0);
  });

  void it('restarting every process resumes every shard from the sessions in Redis', async () => {
    const running = processes.filter((p) => p.alive);
    const sessionsBefore = new Map(Array.from({ length: TOTAL }, (_, id) => [id, sessionOfLive(id)]));
    const stoppedAt = Date.now();
    for (const bot of running) process.kill(bot.pid, 'SIGTERM');
    const exits = await Promise.all(running.map((bot) => bot.exited));
    expect(exits.map((e) => e.code)).toEqual(running.map(() => 0));
    // A graceful stop hands every lease back.
    expect((await leaseOwners()).every((owner) => owner === null)).toBe(true);

    const restarted = [startProcess('member-e'), startProcess('member-f'), startProcess('member-g')];
    await waitForBalance(restarted);
    expect(framesAfter(GatewayOpcodes.Identify, stoppedAt)).toEqual([]);
    for (let id = 0; id < TOTAL; id++) expect(sessionOfLive(id)).toBe(sessionsBefore.get(id));

    const all = Array.from({ length: TOTAL }, (_, id) => id);
    const sent = dispatchMessages(all, 1);
    const handledBy = await waitForHandled(sent);
    const owners = await leaseOwners();
    for (const [id, [s]] of sent) expect(handledBy.get(`${id}#${s}`)).toBe(owners[id]);
    expectNoDuplicateDelivery();
    expectSequencesIncrease(all);
    expectNoOverlappingConnections();
    expect(gateway.identifyViolations).toBe(0);
  });
});
