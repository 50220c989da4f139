import { spawn, type ChildProcess } from 'node:child_process';
import { after, afterEach, before } from 'node:test';
import Redis from 'ioredis';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A redis-server child process listening on 127.0.0.1, owned by the calling test process. */
export interface RunningRedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The redis-server process id. */
  readonly pid: number;
  /** Kills this redis-server (by its PID) and resolves once it has exited. Safe to call more than once. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 10_000;

/** Servers still running in this process, killed synchronously if the process exits without stopping them. */
const running = new Map<number, { child: ChildProcess; dir: string }>();
let exitHookInstalled = false;

function killAllSync(): void {
  for (const [pid, { dir }] of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true });
  }
  running.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllSync();
      process.removeListener(signal, onSignal);
      // Re-raise so the process still terminates the way it would have without this hook.
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not allocate a port'))));
    });
  });
}

/** Resolves true when `PING` on `port` answers `+PONG`, false on any error. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    let answer = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString('utf8');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** The arguments of a redis-server listening on `port` with its files in `dir`. */
type ServerArgs = (port: number, dir: string) => string[];

const plainServer = (extra: string[]): ServerArgs => (port, dir) => [
  '--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', ...extra,
];

async function startOnce(fixedPort: number | undefined, args: ServerArgs, portFree = freePort): Promise<RunningRedisServer> {
  const port = fixedPort ?? (await portFree());
  const dir = mkdtempSync(join(tmpdir(), 'ndg-redis-'));
  const child = spawn('redis-server', args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4_000)));
  child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4_000)));
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));

  const pid = child.pid;
  if (pid !== undefined) {
    installExitHook();
    running.set(pid, { child, dir });
  }

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await waitForExit(child);
      if (pid !== undefined) running.delete(pid);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawnError || pid === undefined) {
      await stop();
      throw new Error(`could not spawn redis-server: ${spawnError?.message ?? 'no pid'}`);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw Object.assign(new Error(`redis-server exited before accepting connections:\n${output}`), { exited: true });
    }
    if (await ping(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server on port ${port} did not answer PING within ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { url: `redis://${HOST}:${port}`, port, pid, stop };
}

/**
 * Starts a throw-away redis-server on a free 127.0.0.1 port (or on `port`, to restart one empty) with no persistence, in a temporary directory.
 * Resolves once it answers PING. The server is killed by `stop()` or, failing that, when this process exits.
 */
export async function startRedisServer(options: { port?: number; args?: string[] } = {}): Promise<RunningRedisServer> {
  return startWithRetries(options.port, plainServer(options.args ?? []));
}

/** The port may be taken between picking and binding it; retry a few times on an early exit. */
async function startWithRetries(port: number | undefined, args: ServerArgs, portFree?: () => Promise<number>): Promise<RunningRedisServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(port, args, portFree);
    } catch (error) {
      if (attempt >= 3 || port !== undefined || !(error as { exited?: boolean }).exited) throw error;
    }
  }
}

/** Sends one command in the inline protocol and resolves with the raw reply once `done(reply)` says it is whole. */
function rawCommand(port: number, command: string, done: (reply: string) => boolean = (r) => r.endsWith('\r\n')): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: HOST, port });
    let reply = '';
    socket.setTimeout(2_000, () => {
      socket.destroy();
      reject(new Error(`no answer to ${command} on port ${port}`));
    });
    socket.once('error', reject);
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (done(reply)) {
        socket.destroy();
        resolve(reply);
      }
    });
  });
}

/** Resolves once `check` holds for the reply to `command` on `port`, polling every 50 ms for at most `ms`. */
async function waitForReply(port: number, command: string, check: (reply: string) => boolean, what: string, ms = 20_000): Promise<string> {
  const deadline = Date.now() + ms;
  let last = '';
  for (;;) {
    last = await rawCommand(port, command, (r) => r.length > 0 && /\r\n$/.test(r) && bulkComplete(r)).catch((error: Error) => error.message);
    if (check(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms on port ${port}; last reply to ${command}: ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** True when a RESP reply that starts with a bulk string (`$n`) has all its bytes. */
function bulkComplete(reply: string): boolean {
  const match = /^\$(\d+)\r\n/.exec(reply);
  return !match || Buffer.byteLength(reply) >= match[0].length + Number(match[1]) + 2;
}

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (port + 10_000 > 65_535) continue;
    const busFree = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port + 10_000, HOST, () => server.close(() => resolve(true)));
    });
    if (busFree) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

/** Redis Cluster nodes started by this process. */
export interface RunningRedisCluster {
  /** `{ host, port }` of every primary. */
  readonly nodes: { host: string; port: number }[];
  readonly servers: RunningRedisServer[];
  /** Kills every node (by PID). */
  stop(): Promise<void>;
}

/**
 * Starts `count` (at least 3) `redis-server --cluster-enabled yes` primaries on 127.0.0.1, joins them into one cluster
 * with `redis-cli --cluster create` (slots spread evenly, no replicas) and resolves once every node reports
 * `cluster_state:ok`.
 */
export async function startRedisCluster(count = 3): Promise<RunningRedisCluster> {
  const servers: RunningRedisServer[] = [];
  const stop = async () => {
    for (const server of servers) await server.stop();
  };
  try {
    for (let i = 0; i < count; i++) {
      servers.push(
        await startWithRetries(
          undefined,
          plainServer(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000']),
          freeClusterPort,
        ),
      );
    }
    const addresses = servers.map((s) => `${HOST}:${s.port}`);
    await new Promise<void>((resolve, reject) => {
      const cli = spawn('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      cli.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      cli.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      cli.once('error', reject);
      cli.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create exited with ${code}:\n${output}`))));
    });
    for (const server of servers) {
      await waitForReply(server.port, 'CLUSTER INFO', (r) => r.includes('cluster_state:ok'), 'cluster_state:ok');
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: servers.map((s) => ({ host: HOST, port: s.port })), servers, stop };
}

/** A primary, its replica and sentinels watching them, started by this process. */
export interface RunningSentinelGroup {
  /** The name the sentinels monitor the primary under. */
  readonly name: string;
  readonly primary: RunningRedisServer;
  readonly replica: RunningRedisServer;
  readonly sentinels: RunningRedisServer[];
  /** `{ host, port }` of every sentinel. */
  readonly sentinelAddresses: { host: string; port: number }[];
  /** The port of the primary the first sentinel names now. */
  primaryPort(): Promise<number>;
  /** Kills every process of the group (by PID). */
  stop(): Promise<void>;
}

/**
 * Starts a primary, a replica (`--replicaof`) and `sentinelCount` sentinels (`redis-server <conf> --sentinel`,
 * quorum 1, `down-after-milliseconds` 1000) on 127.0.0.1, and resolves once the replica is in sync and every
 * sentinel knows it, so that a failover can promote it.
 */
export async function startRedisSentinelGroup(sentinelCount = 1, name = 'ndg-primary'): Promise<RunningSentinelGroup> {
  const started: RunningRedisServer[] = [];
  const stop = async () => {
    for (const server of started.reverse()) await server.stop();
  };
  try {
    const primary = await startRedisServer();
    started.push(primary);
    const replica = await startRedisServer({ args: ['--replicaof', HOST, String(primary.port)] });
    started.push(replica);
    await waitForReply(replica.port, 'INFO replication', (r) => r.includes('master_link_status:up'), 'replica in sync');
    const sentinels: RunningRedisServer[] = [];
    for (let i = 0; i < sentinelCount; i++) {
      const sentinel = await startWithRetries(undefined, (port, dir) => {
        const file = join(dir, 'sentinel.conf');
        writeFileSync(
          file,
          [
            `port ${port}`,
            `bind ${HOST}`,
            `dir ${dir}`,
            `sentinel monitor ${name} ${HOST} ${primary.port} 1`,
            `sentinel down-after-milliseconds ${name} 1000`,
            `sentinel failover-timeout ${name} 10000`,
            `sentinel parallel-syncs ${name} 1`,
            '',
          ].join('\n'),
        );
        return [file, '--sentinel'];
      });
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    for (const sentinel of sentinels) {
      await waitForReply(sentinel.port, `SENTINEL REPLICAS ${name}`, (r) => r.includes(String(replica.port)), 'sentinel knows the replica');
    }
    const primaryPort = async () => {
      const reply = await rawCommand(sentinels[0].port, `SENTINEL GET-MASTER-ADDR-BY-NAME ${name}`, (r) => /\r\n\$\d+\r\n\d+\r\n$/.test(r));
      return Number(/(\d+)\r\n$/.exec(reply)![1]);
    };
    return {
      name,
      primary,
      replica,
      sentinels,
      sentinelAddresses: sentinels.map((s) => ({ host: HOST, port: s.port })),
      primaryPort,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Hooks of a test file that needs one redis-server: started (with a client on it, handed to `use`) before its tests,
 * `afterEachTest` after each, both closed after the tests. A test that starts a server in the place of this one sets
 * it as `started.server`, so that the new one is stopped.
 */
export function useRedisServer(use: (started: { server: RunningRedisServer; redis: Redis }) => void, afterEachTest: () => Promise<void> | void): void {
  let running: { server: RunningRedisServer; redis: Redis } | null = null;
  before(async () => {
    const server = await startRedisServer();
    running = { server, redis: new Redis(server.url) };
    use(running);
  });
  afterEach(afterEachTest);
  after(async () => {
    running?.redis.disconnect();
    await running?.server.stop();
  });
}
