import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/**
 * Starts the sample bot (`sample/main.ts`) in a child process, stdout and stderr piped, with this process's
 * environment plus `extraEnv`, less what would change the sample's mode (`DISCORD_TOKEN`, `DISCORD_INTENTS`, colours,
 * the test runner's context) and the variables named in `unset`.
 */
export function spawnSample(extraEnv: NodeJS.ProcessEnv = {}, unset: string[] = []): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extraEnv };
  for (const key of ['DISCORD_TOKEN', 'DISCORD_INTENTS', 'FORCE_COLOR', 'NODE_TEST_CONTEXT', ...unset]) delete env[key];
  return spawn(process.execPath, ['--require', 'ts-node/register/transpile-only', 'sample/main.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}
