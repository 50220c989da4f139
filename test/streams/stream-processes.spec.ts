import { describe, it, before, after } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import Redis from 'ioredis';
import { dispatchStreamKeys, shardLeaseKey } from '../../lib/redis';
import { createMessage, type LocalGateway } from '../../lib/nest/testing';
import { eventually, eventuallyAsync, startGateway } from '../helpers/gateway-test-kit';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { spawnBotProcess, type BotProcess } from '../redis/fixtures/bot-process';
import { spawnWorkerProcess } from './fixtures/worker-process';

const TOTAL = 8;
const LEASE_TTL_MS = 1_500;
const CLAIM_IDLE_MS = 1_000;
/** Events per second sent over the 8 shards together. */
const RATE = 400;

let redisServer: RunningRedisServer;
let redis: Redis;
let gateway: LocalGateway;
const processes: BotProcess[] = [];

function kill(bot: BotProcess): void {
  const child: ChildProcess = bot.child;
  if (bot.alive) process.kill(child.pid!, 'SIGKILL');
}

const key = (shardId: number, sequence: number) => `${shardId}:${sequence}`;

void describe('Redis Streams delivery across processes: 2 gateway processes, 8 shards, 3 workers in group a, 1 in group b (real redis-server)', { timeout: 300_000 }, () => {
  before(async () => {
    redisServer = await startRedisServer();
    redis = new Redis(redisServer.url);
    gateway = await startGateway({ shards: TOTAL, identifyWindowMs: 100, sessionStartLimit: { max_concurrency: TOTAL } });
  });

  after(async () => {
    for (const bot of processes) kill(bot);
    await Promise.all(processes.map((bot) => bot.exited));
    redis?.disconnect();
    await gateway?.close();
    await redisServer?.stop();
  });

  void it('every event reaches group a at least once and group b exactly once, through kill -9 of a worker and of a gateway process', async (t) => {
    const keyPrefix = `ndg-test:streams-processes:${process.pid}`;
    const startGatewayProcess = (memberId: string) => {
      const bot = spawnBotProcess({
        apiUrl: gateway.apiUrl,
        token: gateway.token,
        redisUrl: redisServer.url,
        keyPrefix,
        total: TOTAL,
        memberId,
        leaseTtlMs: LEASE_TTL_MS,
        identifyWindowMs: 100,
        delivery: 'redis-streams',
        streams: { groupRefreshMs: 200 },
      });
      processes.push(bot);
      return bot;
    };
    const g1 = startGatewayProcess('g1');
    const g2 = startGatewayProcess('g2');
    const ownerOf = async (shardId: number) => {
      const token = await redis.get(shardLeaseKey(keyPrefix, shardId));
      return token === null ? null : token.slice(0, token.lastIndexOf('|'));
    };
    const owners = () => Promise.all(Array.from({ length: TOTAL }, (_, id) => ownerOf(id)));
    await eventuallyAsync(
      async () => {
        const now = await owners();
        const live = Array.from({ length: TOTAL }, (_, id) => gateway.connectionOf(id)?.handshakeDone === true);
        return now.includes('g1') && now.includes('g2') && now.every((o) => o !== null) && live.every(Boolean);
      },
      60_000,
      `the gateway processes to share the 8 shards\n${g1.describe()}\n${g2.describe()}`,
    );

    const startWorker = (group: string, consumer: string, extra: Record<string, unknown> = {}) => {
      const worker = spawnWorkerProcess({ redisUrl: redisServer.url, keyPrefix, group, consumer, claimIdleMs: CLAIM_IDLE_MS, ...extra });
      processes.push(worker);
      return worker;
    };
    const a = [startWorker('a', 'a1', { holdMs: 20 }), startWorker('a', 'a2', { holdMs: 20 }), startWorker('a', 'a3', { holdMs: 20 })];
    const b = startWorker('b', 'b1', { exactlyOnce: true });
    const workers = [...a, b];
    await eventually(() => workers.every((w) => w.lines.some((l) => l.type === 'started')), 60_000, `the workers to start\n${workers.map((w) => w.describe()).join('\n')}`);
    const wantsBoth = (bot: BotProcess) => bot.lines.some((l) => l.type === 'log' && /worker groups a, b want: MESSAGE_CREATE/.test(l.message));
    await eventually(() => wantsBoth(g1) && wantsBoth(g2), 10_000, 'both gateway processes to see groups a and b');

    const sent: string[] = [];
    let message = 0;
    const startedAt = performance.now();
    const feeder = setInterval(() => {
      const due = Math.min(Math.floor(((performance.now() - startedAt) * RATE) / 1_000), sent.length + 50);
      while (sent.length < due) {
        const shardId = sent.length % TOTAL;
        sent.push(key(shardId, gateway.dispatch(shardId, 'MESSAGE_CREATE', createMessage(++message))));
      }
    }, 2);
    const handledBy = (bots: BotProcess[]) => bots.flatMap((bot) => bot.events.map((e) => key(e.shardId, e.sequence)));
    try {
      // kill -9 of a worker of group a while it has entries in flight.
      await eventually(() => a[0].events.length >= 200, 90_000, `a1 to handle 200 events\n${a[0].describe()}`);
      kill(a[0]);
      await a[0].exited;
      const orphaned: { shardId: number; id: string }[] = [];
      for (let shardId = 0; shardId < TOTAL; shardId++) {
        const stream = dispatchStreamKeys.stream(keyPrefix, shardId);
        const pending = (await redis.xpending(stream, 'a', '-', '+', 10_000, 'a1')) as [string, string, number, number][];
        for (const [id] of pending) orphaned.push({ shardId, id });
      }
      const killedWorkerAt = performance.now();
      t.diagnostic(`a1 killed with ${orphaned.length} entries pending`);
      const survivors = [a[1], a[2]];
      // Entry ids are unique per stream: an entry is named by its shard and id.
      const handledEntries = () => new Set(survivors.flatMap((w) => w.events.map((e) => `${e.shardId}:${(e as unknown as { entryId: string }).entryId}`)));
      expect(orphaned.length).toBeGreaterThan(0);
      await eventually(() => orphaned.every(({ shardId, id }) => handledEntries().has(`${shardId}:${id}`)), 60_000, 'the entries a1 left pending handled by a2 or a3');
      t.diagnostic(`a1's pending entries handled by another worker ${Math.round(performance.now() - killedWorkerAt)} ms after the kill (claimIdleMs ${CLAIM_IDLE_MS})`);

      // kill -9 of a gateway process: its shards move to the other one by RESUME.
      const g2Shards = (await owners()).flatMap((owner, id) => (owner === 'g2' ? [id] : []));
      const killedGatewayAt = Date.now();
      kill(g2);
      await g2.exited;
      await eventuallyAsync(async () => (await owners()).every((o) => o === 'g1'), 60_000, `g1 to own every shard\n${g1.describe()}`);
      await eventually(
        () => g2Shards.every((id) => gateway.frames.some((f) => f.op === GatewayOpcodes.Resume && f.shardId === id && f.at >= killedGatewayAt)),
        30_000,
        `g2's shards (${g2Shards.join(', ')}) resumed`,
      );
      const countAfterTakeover = sent.length;
      await eventually(() => sent.length >= countAfterTakeover + 400, 60_000, '400 more events sent');
    } finally {
      clearInterval(feeder);
    }
    // One IDENTIFY per shard in all: the killed gateway process's shards moved by RESUME.
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(TOTAL);

    const missing = (bots: BotProcess[]) => {
      const handled = new Set(handledBy(bots));
      return sent.filter((k) => !handled.has(k));
    };
    const describeMissing = (bots: BotProcess[]) => {
      const list = missing(bots);
      const inGateways = new Set([...g1.events, ...g2.events].map((e) => key(e.shardId, e.sequence)));
      return `${list.length} missing, e.g. ${list.slice(0, 10).join(' ')}; of them ${list.filter((k) => inGateways.has(k)).length} handled in a gateway process`;
    };
    await eventually(() => missing(a).length === 0, 90_000, 'group a to handle every event sent').catch((error: Error) => {
      throw new Error(`${error.message}: ${describeMissing(a)}; group b: ${describeMissing([b])}\n${a.map((w) => w.describe()).join('\n')}`);
    });
    await eventually(() => missing([b]).length === 0, 90_000, 'group b to handle every event sent').catch((error: Error) => {
      throw new Error(`${error.message}: ${describeMissing([b])}\n${b.describe()}`);
    });
    const byA = handledBy(a);
    const byB = handledBy([b]);
    const lostA = sent.filter((k) => !byA.includes(k));
    const lostB = sent.filter((k) => !byB.includes(k));
    expect(lostA).toEqual([]);
    expect(lostB).toEqual([]);
    // Exactly once in group b (exactlyOnce), though the killed gateway process's events were published again on RESUME.
    expect(byB.length).toBe(new Set(byB).size);
    t.diagnostic(
      `${sent.length} events sent over ${TOTAL} shards; group a handled ${byA.length} (${byA.length - new Set(byA).size} twice), ` +
        `group b ${byB.length} (${b.lines.filter((l) => l.type === 'log').length} log lines)`,
    );
  });
});
