import { after, describe, it } from 'node:test';
import { expect } from 'expect';
import type { ChildProcess } from 'node:child_process';
import { DEMO_GUILDS } from '../../sample/demo-script';
import { spawnSample } from '../helpers/sample-process';

const LIMIT_MS = 60_000;
const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

let child: ChildProcess | null = null;

void after(() => {
  // Never leave the bot running, whatever happened.
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
});

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  overran: boolean;
}

/** Runs the sample bot without DISCORD_TOKEN (so against its in-process local gateway) until it exits. */
function runSample(): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const proc = spawnSample();
    child = proc;
    let output = '';
    let overran = false;
    proc.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    proc.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      overran = true;
      if (proc.pid !== undefined) process.kill(proc.pid, 'SIGKILL');
    }, LIMIT_MS);
    proc.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      // Strip colours in case the logger uses them anyway.
      resolve({ code, signal, overran, output: output.replace(ANSI_COLOUR, '') });
    });
  });
}

void describe('sample bot', () => {
  void it('runs its demo against the local gateway, shows events flowing and exits 0', async () => {
    const result = await runSample();
    const { output } = result;
    expect({ overran: result.overran, code: result.code, signal: result.signal }).toEqual({ overran: false, code: 0, signal: null });

    // Both shards became ready, and the demo's reconnect and dropped connection were resumed.
    expect(output).toMatch(/shard 0 ready as local-bot/);
    expect(output).toMatch(/shard 1 ready as local-bot/);
    expect(output.match(/shard \d resumed its session at sequence \d+/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    for (const guildId of DEMO_GUILDS) expect(output).toContain(`guild available: Guild ${guildId}`);
    expect(output).toMatch(/fetched 1500 member\(s\)/);
    expect(output.match(/!stats on shard \d: \d+ message\(s\) so far, presence updated/g)).toHaveLength(2);

    // Every message of the demo was counted once, including the two replayed on resume:
    // 3 in the first guild, 2 in the second (one is !stats), 4 in the third (two replayed, one !stats).
    const stats = /messages per guild: (\{.*\})/.exec(output);
    expect(stats).not.toBeNull();
    expect(JSON.parse(stats![1])).toEqual({ [DEMO_GUILDS[0]]: 3, [DEMO_GUILDS[1]]: 2, [DEMO_GUILDS[2]]: 4 });

    expect(output).toMatch(/\[Sample\] done/);
    expect(output).not.toMatch(/\bERROR\b/);
  });
});
