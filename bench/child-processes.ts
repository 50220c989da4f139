import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

// Child processes of the benchmark scripts: started, read line by line, and killed (by their PID) on the way out.

const ROOT = resolve(__dirname, '..');

const children = new Set<ChildProcess>();

/** Runs a script (a path to a `.js` file) in a child `node` process (`node` is the binary, this one's by default). */
export function nodeScript(file: string, env: Record<string, string>, nodeArgs: string[] = [], node = process.execPath): ChildProcess {
  const child = spawn(node, [...nodeArgs, file], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Sends `signal` to a child still running. */
export function killChild(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Collects a child's output lines; resolves with the first line starting with `prefix`. */
export function waitForLine(child: ChildProcess, prefix: string, timeoutMs: number, what: string): Promise<{ line: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => {
      settle(() => reject(new Error(`${what}: no result within ${timeoutMs} ms${tail(stderr)}`)));
      killChild(child, 'SIGKILL');
    }, timeoutMs);
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      stdout += chunk;
      const start = stdout.indexOf(prefix);
      const end = start >= 0 ? stdout.indexOf('\n', start) : -1;
      if (end >= 0) settle(() => resolvePromise({ line: stdout.slice(start + prefix.length, end), stderr }));
      else if (start < 0) stdout = stdout.slice(-prefix.length);
    });
    child.stderr!.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.once('exit', (code, signal) => settle(() => reject(new Error(`${what} exited (${signal ?? code})${tail(stderr)}`))));
  });
}

function tail(stderr: string): string {
  const text = stderr.trim();
  return text ? `: ${text.split('\n').slice(-6).join(' | ')}` : '';
}

/** Resolves when the child has exited; kills it after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => {
      killChild(child, 'SIGKILL');
      resolvePromise();
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolvePromise();
    });
  });
}

/** Kills every child still running (SIGKILL, by PID). */
export function killAllChildren(): void {
  for (const child of children) killChild(child, 'SIGKILL');
}

/** Runs a benchmark script's `main`; on SIGINT, SIGTERM or a failure, kills its children first. */
export function runBenchMain(main: () => Promise<void>): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAllChildren();
      process.exit(130);
    });
  }
  main().catch((error: Error) => {
    killAllChildren();
    process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
}
