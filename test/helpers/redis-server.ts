import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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

async function startOnce(fixedPort?: number): Promise<RunningRedisServer> {
  const port = fixedPort ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'ndg-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
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
export async function startRedisServer(options: { port?: number } = {}): Promise<RunningRedisServer> {
  // The port may be taken between picking and binding it; retry a few times on an early exit.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options.port);
    } catch (error) {
      if (attempt >= 3 || options.port !== undefined || !(error as { exited?: boolean }).exited) throw error;
    }
  }
}
