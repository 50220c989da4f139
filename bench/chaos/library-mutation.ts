import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { ChaosCheck, ChaosReport } from './chaos-run';

/**
 * A deliberate bug put into a copy of the library, to show that the chaos checker fails when it should. The anchor
 * is a short piece of library source that must occur exactly once in `lib/` (the local gateway, the checker's side,
 * excluded); it is replaced by `replacement`.
 */
export interface LibraryMutation {
  name: string;
  /** What the mutation breaks, for the table. */
  description: string;
  anchor: string;
  replacement: string;
}

/** The mutations `bench/chaos/mutations.ts` runs. */
export const LIBRARY_MUTATIONS: readonly LibraryMutation[] = [
  {
    name: 'drop-event',
    description: 'drop an event: the shard never emits MESSAGE_CREATE #50 of a session',
    anchor: 'this.dispatchSubject.next({ shardId: this.id, t, s, d, sessionId: this.sessionData?.sessionId });',
    replacement:
      "if (!(t === 'MESSAGE_CREATE' && s === 50)) this.dispatchSubject.next({ shardId: this.id, t, s, d, sessionId: this.sessionData?.sessionId });",
  },
  {
    name: 'no-rate-limiter',
    description: 'disable the rate limiter: commands never wait for room in the window',
    anchor: 'if (this.remaining() <= 0) return false;',
    replacement: '',
  },
  {
    name: 'no-duplicate-filter',
    description: 'disable the duplicate filter: events already received are emitted again',
    anchor: 'private acceptSequence(conn: Connection, t: string, s: number): boolean {',
    replacement: 'private acceptSequence(conn: Connection, t: string, s: number): boolean {\n    this.sequence = s;\n    return true;',
  },
  {
    name: 'no-identify-spacing',
    description: 'disable identify spacing: the identify queue grants a bucket again at once',
    anchor: 'this.nextFreeAt.set(key, now + this.spacingMs)',
    replacement: 'this.nextFreeAt.set(key, now)',
  },
];

/** The project root (the folder holding `lib/` and `bench/`). */
const PROJECT_ROOT = join(__dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...sourceFiles(path));
    else if (name.endsWith('.ts')) found.push(path);
  }
  return found;
}

/**
 * Copies what the chaos run needs (`lib/`, `bench/chaos/`, `tsconfig.json`, `package.json`, and a link to
 * `node_modules`) into a new temporary folder and applies `mutation` to the copy of `lib/`. Throws, naming the
 * mutation and its anchor, when the anchor is missing or occurs more than once. Returns the folder.
 */
export function prepareLibraryCopy(mutation: LibraryMutation | null): string {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-mutation-'));
  try {
    cpSync(join(PROJECT_ROOT, 'lib'), join(dir, 'lib'), { recursive: true });
    cpSync(join(PROJECT_ROOT, 'bench', 'chaos'), join(dir, 'bench', 'chaos'), { recursive: true });
    for (const file of ['tsconfig.json', 'package.json']) cpSync(join(PROJECT_ROOT, file), join(dir, file));
    symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    if (mutation) applyMutation(join(dir, 'lib'), mutation);
    return dir;
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

function applyMutation(libDir: string, mutation: LibraryMutation): void {
  const hits: { file: string; count: number }[] = [];
  for (const file of sourceFiles(libDir)) {
    if (relative(libDir, file).startsWith('testing')) continue;
    const count = readFileSync(file, 'utf8').split(mutation.anchor).length - 1;
    if (count > 0) hits.push({ file, count });
  }
  const total = hits.reduce((sum, hit) => sum + hit.count, 0);
  if (total !== 1) {
    const where = hits.map((hit) => `${relative(libDir, hit.file)} (${hit.count})`).join(', ');
    throw new Error(
      `Mutation ${mutation.name}: its anchor ${JSON.stringify(mutation.anchor)} occurs ${total} times in lib/` +
        `${where ? `: ${where}` : ''}; it must occur exactly once (update the anchor to the current source)`,
    );
  }
  const file = hits[0].file;
  writeFileSync(file, readFileSync(file, 'utf8').replace(mutation.anchor, mutation.replacement));
}

/** What one chaos run on a library copy gave. */
export interface CopyRunResult {
  /** The report, or null when the run ended without one (it crashed or timed out). */
  report: ChaosReport | null;
  exitCode: number | null;
  /** The last lines the run printed (stdout and stderr). */
  tail: string[];
}

/**
 * Runs `bench/chaos/main.ts` of a copy made by {@link prepareLibraryCopy} in a child process with `args`, and reads
 * its report. The child is killed (by its pid) after `timeoutMs`.
 */
export function runChaosOnCopy(dir: string, args: readonly string[], timeoutMs = 300_000): Promise<CopyRunResult> {
  const reportFile = join(dir, 'chaos-report.json');
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--require', 'ts-node/register/transpile-only', join('bench', 'chaos', 'main.ts'), ...args, `--report=${reportFile}`],
      { cwd: dir, env: { ...process.env, TS_NODE_PROJECT: join(dir, 'tsconfig.json') }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines: string[] = [];
    const keep = (chunk: Buffer) => {
      lines.push(...chunk.toString().split('\n').filter((line) => line.length > 0));
      if (lines.length > 200) lines.splice(0, lines.length - 200);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      lines.push(`chaos: no report within ${timeoutMs} ms; stopped`);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      const report = existsSync(reportFile) ? (JSON.parse(readFileSync(reportFile, 'utf8')) as ChaosReport) : null;
      resolve({ report, exitCode, tail: lines.slice(-30) });
    });
  });
}

/** The checker's verdict on one mutation, against the run of the library as it is. */
export interface MutationVerdict {
  /** `caught`: the run failed a check the unmutated run passed; `missed`: it did not; `error`: no report. */
  verdict: 'caught' | 'missed' | 'error';
  /** The checks that failed on the mutation and not on the library as it is. */
  caughtBy: ChaosCheck[];
}

/** Compares a mutated run with the baseline run of the library as it is. */
export function judgeMutation(baseline: ChaosReport, mutated: CopyRunResult): MutationVerdict {
  if (!mutated.report) return { verdict: 'error', caughtBy: [] };
  const caughtBy = mutated.report.failedChecks.filter((check) => !baseline.failedChecks.includes(check));
  return { verdict: caughtBy.length > 0 ? 'caught' : 'missed', caughtBy };
}
