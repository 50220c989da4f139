import { describe, it, before, after, type TestContext } from 'node:test';
import { expect } from 'expect';
import Redis from 'ioredis';
import { createMessage, type LocalGateway } from '../../lib/testing';
import { eventually, sleep, startGateway } from '../helpers/gateway-test-kit';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { spawnBotProcess, type BotProcess } from './fixtures/bot-process';

const TOTAL = 2;
const LEASE_TTL_MS = 1_500;
const IDENTIFY_WINDOW_MS = 100;
/** Events the killed process handles before the kill, and the survivor after it, at about 1,000 per second. */
const EVENTS_BEFORE_KILL = 400;
const EVENTS_AFTER_TAKEOVER = 200;
/** Today's figure (the saved sequence up to 1 s old at 1,000 events/s per shard) is ~60: a twentieth of it. */
const MAX_DUPLICATES_BY_DEFAULT = 3;

let redisServer: RunningRedisServer;
let redis: Redis;
const processes: BotProcess[] = [];
const gateways: LocalGateway[] = [];

interface Outcome {
  duplicates: number[];
  lost: number[];
  /** The last sequence the killed process printed. */
  lastByVictim: number;
  ratePerSecond: number;
}

/**
 * Two processes share two shards; one shard gets 1,000 events per second, its process is killed with SIGKILL after handling EVENTS_BEFORE_KILL of them, and the events keep coming
 * until the survivor has resumed the shard and handled EVENTS_AFTER_TAKEOVER more. Every event's handling is
 * printed by the process that ran the handler.
 */
async function killDuringStream(t: TestContext, name: string, options: Record<string, unknown>): Promise<Outcome> {
  const gateway = await startGateway({ shards: TOTAL, identifyWindowMs: IDENTIFY_WINDOW_MS, sessionStartLimit: { max_concurrency: TOTAL } });
  gateways.push(gateway);
  const keyPrefix = `ndg-test:kill-duplicates:${process.pid}:${name}`;
  const start = (memberId: string) => {
    const bot = spawnBotProcess({
      apiUrl: gateway.apiUrl,
      token: gateway.token,
      redisUrl: redisServer.url,
      keyPrefix,
      total: TOTAL,
      memberId,
      leaseTtlMs: LEASE_TTL_MS,
      identifyWindowMs: IDENTIFY_WINDOW_MS,
      ...options,
    });
    processes.push(bot);
    return bot;
  };
  const a = start(`${name}-a`);
  const b = start(`${name}-b`);
  const ownerOf = async (shardId: number) => {
    const token = await redis.get(`${keyPrefix}:shard:${shardId}:lease`);
    return token === null ? null : token.slice(0, token.lastIndexOf('|'));
  };
  // One shard each, both connected.
  let victimShard = -1;
  for (const deadline = Date.now() + 30_000; ; await sleep(20)) {
    const owners = await Promise.all(Array.from({ length: TOTAL }, (_, id) => ownerOf(id)));
    victimShard = owners.indexOf(b.memberId);
    const live = Array.from({ length: TOTAL }, (_, id) => gateway.connectionOf(id)?.handshakeDone === true);
    if (owners.includes(a.memberId) && victimShard >= 0 && live.every(Boolean)) break;
    if (Date.now() > deadline) throw new Error(`The two processes did not share the shards\n${a.describe()}\n${b.describe()}`);
  }

  const sent: number[] = [];
  let message = 0;
  // 1,000 events per second: each timer tick sends what the elapsed time calls for (ticks late on a busy machine send more).
  const startedAt = performance.now();
  const feeder = setInterval(() => {
    const due = Math.min(Math.floor(performance.now() - startedAt), sent.length + 50);
    while (sent.length < due) sent.push(gateway.dispatch(victimShard, 'MESSAGE_CREATE', createMessage(++message)));
  }, 1);
  const of = (bot: BotProcess) => bot.events.filter((e) => e.shardId === victimShard).map((e) => e.sequence);
  try {
    await eventually(() => of(b).length >= EVENTS_BEFORE_KILL, 30_000, `${EVENTS_BEFORE_KILL} events handled by ${b.memberId}`);
    const ratePerSecond = Math.round((sent.length * 1_000) / (performance.now() - startedAt));
    process.kill(b.pid, 'SIGKILL');
    expect((await b.exited).signal).toBe('SIGKILL');
    const lastByVictim = Math.max(...of(b));
    await eventually(
      () => of(a).filter((s) => s > lastByVictim).length >= EVENTS_AFTER_TAKEOVER,
      30_000,
      `${EVENTS_AFTER_TAKEOVER} events handled by ${a.memberId} after the take-over\n${a.describe()}`,
    );
    clearInterval(feeder);
    const last = sent[sent.length - 1];
    // Everything sent has reached the survivor once its own handling passed the last one sent.
    await eventually(() => of(a).includes(last), 10_000, `the last event sent (#${last})`);

    const byVictim = new Set(of(b));
    const bySurvivor = of(a);
    const handled = new Set([...byVictim, ...bySurvivor]);
    const duplicates = bySurvivor.filter((s) => byVictim.has(s));
    // A process never handles one event twice itself.
    expect(new Set(bySurvivor).size).toBe(bySurvivor.length);
    expect(byVictim.size).toBe(of(b).length);
    const lost = sent.filter((s) => !handled.has(s));
    t.diagnostic(
      `${name}: ${sent.length} events at ${ratePerSecond}/s; ${byVictim.size} handled by the killed process, ` +
        `${duplicates.length} handled again by the survivor, ${lost.length} never handled`,
    );
    return { duplicates, lost, lastByVictim, ratePerSecond };
  } finally {
    clearInterval(feeder);
    if (a.alive) process.kill(a.pid, 'SIGKILL');
    await a.exited;
  }
}

void describe('Duplicates after kill -9 (real processes, real Redis, the local gateway)', { timeout: 120_000 }, () => {
  before(async () => {
    redisServer = await startRedisServer();
    redis = new Redis(redisServer.url);
  });

  after(async () => {
    for (const bot of processes) if (bot.alive) process.kill(bot.pid, 'SIGKILL');
    await Promise.all(processes.map((bot) => bot.exited));
    redis?.disconnect();
    for (const gateway of gateways) await gateway.close();
    await redisServer?.stop();
  });

  void it(`default options: at most ${MAX_DUPLICATES_BY_DEFAULT} events handled twice, none lost`, async (t) => {
    const outcome = await killDuringStream(t, 'default', {});
    expect(outcome.lost).toEqual([]);
    expect(outcome.duplicates.length).toBeLessThanOrEqual(MAX_DUPLICATES_BY_DEFAULT);
  });

  void it('exactly-once mode: no event handled twice; only events claimed at the moment of the kill may be unhandled', async (t) => {
    const outcome = await killDuringStream(t, 'exactly-once', { exactlyOnce: true });
    expect(outcome.duplicates).toEqual([]);
    // At most once for what the killed process had claimed and not yet handled: right after its last handled event.
    const unhandled = outcome.lost;
    expect(unhandled.length).toBeLessThanOrEqual(5);
    unhandled.forEach((s, i) => expect(s).toBe(outcome.lastByVictim + 1 + i));
  });
});
