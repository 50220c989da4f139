import { runChaos, type ChaosOptions } from './chaos-run';

/**
 * `npm run chaos [-- --shards=4 --events=20000 --faults=150 --rate=250 --seed=1]`: runs the chaos scenario on
 * 127.0.0.1, prints what it checked and a one-line summary, and exits 1 on any violation.
 */
function parseArgs(argv: string[]): ChaosOptions {
  const options: ChaosOptions = {};
  const numbers: Record<string, keyof ChaosOptions> = {
    shards: 'shards',
    events: 'events',
    faults: 'faults',
    rate: 'eventsPerSecond',
    seed: 'seed',
    heartbeat: 'heartbeatIntervalMs',
  };
  for (const arg of argv) {
    const match = /^--([a-z]+)=(\d+)$/.exec(arg);
    const key = match ? numbers[match[1]] : undefined;
    if (!match || !key) throw new Error(`Unknown argument ${arg} (use ${Object.keys(numbers).map((k) => `--${k}=N`).join(' ')})`);
    (options as Record<string, number>)[key] = Number(match[2]);
  }
  return options;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const report = await runChaos({ ...options, log: (line) => process.stdout.write(`${line}\n`) });
  process.exitCode = report.pass ? 0 : 1;
}

main().catch((error: Error) => {
  process.stderr.write(`chaos: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
