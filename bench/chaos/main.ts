import { writeFileSync } from 'node:fs';
import { runChaos, type ChaosOptions } from './chaos-run';

/**
 * `npm run chaos [-- --shards=4 --events=20000 --faults=150 --rate=250 --seed=1 --churn=1500 --report=report.json]`:
 * runs the chaos scenario on 127.0.0.1, prints what it checked and a one-line summary, writes the report as JSON
 * when `--report` names a file, and exits 1 on any violation.
 */
const NUMBERS: Record<string, keyof ChaosOptions> = {
  shards: 'shards',
  events: 'events',
  faults: 'faults',
  rate: 'eventsPerSecond',
  seed: 'seed',
  heartbeat: 'heartbeatIntervalMs',
  concurrency: 'maxConcurrency',
  churn: 'churnMs',
};

function parseArgs(argv: string[]): { options: ChaosOptions; reportFile: string | null } {
  const options: ChaosOptions = {};
  let reportFile: string | null = null;
  for (const arg of argv) {
    const report = /^--report=(.+)$/.exec(arg);
    if (report) {
      reportFile = report[1];
      continue;
    }
    const match = /^--([a-z]+)=(\d+)$/.exec(arg);
    const key = match ? NUMBERS[match[1]] : undefined;
    if (!match || !key) {
      throw new Error(`Unknown argument ${arg} (use ${Object.keys(NUMBERS).map((k) => `--${k}=N`).join(' ')} --report=FILE)`);
    }
    (options as Record<string, number>)[key] = Number(match[2]);
  }
  return { options, reportFile };
}

async function main(): Promise<void> {
  const { options, reportFile } = parseArgs(process.argv.slice(2));
  const report = await runChaos({ ...options, log: (line) => process.stdout.write(`${line}\n`) });
  if (reportFile) writeFileSync(reportFile, JSON.stringify(report, null, 2));
  process.exitCode = report.pass ? 0 : 1;
}

main().catch((error: Error) => {
  process.stderr.write(`chaos: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
