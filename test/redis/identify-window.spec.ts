import { describe, it, before, after } from 'node:test';
import { expect } from 'expect';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { GatewayOpcodes } from 'discord-api-types/v10';
import type { LocalGateway } from '../../lib/nest/testing';
import { eventually, startGateway } from '../helpers/gateway-test-kit';
import { startRedisDelayProxy, type RedisDelayProxy } from '../helpers/redis-delay-proxy';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';

const ROOT = join(__dirname, '..', '..');
const FIXTURE = join(__dirname, 'fixtures', 'identify-cluster.ts');
const TOTAL = 12;
const MAX_CONCURRENCY = 2;
const IDENTIFY_WINDOW_MS = 600;
/** What the injected faults add: a handshake guard this slow, and every other Redis answer held back this long. */
const SLOW_MS = 400;

let redisServer: RunningRedisServer;
let gateway: LocalGateway;
const proxies: RedisDelayProxy[] = [];
const children: ChildProcess[] = [];
/** What the processes printed on stderr, for failure messages. */
let errors = '';

/** Starts one process of the bot running `ids`; resolves once it is connected to Redis and waits for "go". */
async function startProcess(ids: number[], redisUrl: string, guardDelayMs: number): Promise<ChildProcess> {
  const config = {
    apiUrl: gateway.apiUrl,
    token: gateway.token,
    redisUrl,
    keyPrefix: `ndg-test:identify-window:${process.pid}`,
    total: TOTAL,
    ids,
    windowMs: IDENTIFY_WINDOW_MS,
    guardDelayMs,
  };
  const child = spawn(process.execPath, ['--require', 'ts-node/register/transpile-only', FIXTURE, JSON.stringify(config)], {
    cwd: ROOT,
    env: { ...process.env, TS_NODE_PROJECT: join(ROOT, 'tsconfig.json') },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => line === 'ready' && resolve());
    child.once('exit', (code) => reject(new Error(`process exited (${code}) before it was ready: ${errors}`)));
  });
  return child;
}

void describe('Identify window across processes with a slow handshake guard and a slow Redis', { timeout: 90_000 }, () => {
  before(async () => {
    redisServer = await startRedisServer();
    gateway = await startGateway({
      shards: TOTAL,
      identifyWindowMs: IDENTIFY_WINDOW_MS,
      sessionStartLimit: { max_concurrency: MAX_CONCURRENCY },
    });
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(children.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((r) => child.once('exit', r)) : null)));
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await gateway?.close();
    await redisServer?.stop();
  });

  void it('keeps the IDENTIFYs of each bucket a window apart by arrival at the gateway: 0 violations', async () => {
    // Every other answer from Redis (identify grants among them) reaches the second process 400 ms late.
    let answers = 0;
    const slowRedis = await startRedisDelayProxy(redisServer.port, { toClient: () => (answers++ % 2 === 0 ? SLOW_MS : 0) });
    proxies.push(slowRedis);
    // Shards interleaved so that each bucket (shard id % 2) is shared by the three processes.
    const started = await Promise.all([
      startProcess([0, 3, 6, 9], redisServer.url, SLOW_MS), // slow handshake guard
      startProcess([1, 4, 7, 10], slowRedis.url, 0), // slow Redis
      startProcess([2, 5, 8, 11], redisServer.url, 0),
    ]);
    for (const child of started) child.stdin!.write('go\n');

    const live = () => Array.from({ length: TOTAL }, (_, id) => gateway.connectionOf(id)).filter((c) => c?.handshakeDone).length;
    await eventually(() => live() === TOTAL, 60_000, `all ${TOTAL} shards connected`).catch((error: Error) => {
      throw new Error(`${error.message}; ${live()} connected\n${errors.slice(-4_000)}`);
    });

    expect(slowRedis.delayed.toClient).toBeGreaterThan(0);
    // Measured by the gateway when each IDENTIFY arrived, per bucket.
    const identifies = gateway.framesOf(GatewayOpcodes.Identify);
    const tooClose: string[] = [];
    for (let key = 0; key < MAX_CONCURRENCY; key++) {
      const frames = identifies.filter((f) => f.shardId! % MAX_CONCURRENCY === key);
      for (let i = 1; i < frames.length; i++) {
        const gap = frames[i].at - frames[i - 1].at;
        if (gap < IDENTIFY_WINDOW_MS) tooClose.push(`shard ${frames[i].shardId} ${gap} ms after shard ${frames[i - 1].shardId}`);
      }
    }
    expect(tooClose).toEqual([]);
    expect(gateway.identifyViolations).toBe(0);
    // One IDENTIFY per shard: none was refused for coming too early.
    expect(identifies.map((f) => f.shardId).sort((a, b) => a! - b!)).toEqual(Array.from({ length: TOTAL }, (_, id) => id));
  });
});
