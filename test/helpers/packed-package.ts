import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

/** The exit status and the output (stdout then stderr) of a command. */
export interface Run {
  status: number | null;
  output: string;
}

/** The environment of the commands: this one, less what would tie a child to this test run. */
export function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', CI: 'true' };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return env;
}

/** Runs a command to its end (killed after `timeoutMs`). */
export function run(command: string, args: string[], cwd: string, timeoutMs: number): Run {
  const result = spawnSync(command, args, { cwd, env: childEnv(), encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? `\n${result.error.message}` : ''}`;
  return { status: result.status, output };
}

/** Asserts a run exited 0, showing its output when it did not. */
export function expectSuccess(result: Run, what: string): void {
  if (result.status !== 0) throw new Error(`${what} exited with ${result.status}:\n${result.output}`);
}

/**
 * `npm pack` of a copy of the repository at `root` (its prepack script builds dist/ there, so that the
 * repository's own dist/ is left alone while other tests run), into the folder `work`. Returns the tarball's path.
 */
export function packPackage(root: string, work: string): string {
  const source = join(work, 'source');
  mkdirSync(source);
  for (const entry of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'tsconfig.json', 'tsconfig.build.json', 'lib']) {
    if (existsSync(join(root, entry))) cpSync(join(root, entry), join(source, entry), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(source, 'node_modules'), 'dir');
  const packed = run('npm', ['pack', '--silent', '--pack-destination', work], source, 120_000);
  expectSuccess(packed, 'npm pack');
  return join(work, packed.output.trim().split('\n').pop()!.trim());
}
