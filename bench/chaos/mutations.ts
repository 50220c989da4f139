import { rmSync } from 'node:fs';
import { LIBRARY_MUTATIONS, judgeMutation, prepareLibraryCopy, runChaosOnCopy, type CopyRunResult } from './library-mutation';

/**
 * `npx ts-node --transpile-only bench/chaos/mutations.ts [chaos arguments]`: shows that the chaos checker fails when
 * it should. It runs a short chaos run on a copy of the library as it is, then on one copy per deliberate mutation
 * (drop an event, disable the rate limiter, the duplicate filter, identify spacing), each in its own process with
 * the same seed, and prints a markdown table: the mutation, the checker's verdict and the checks that caught it
 * (those that failed on the mutation but not on the library as it is). Exits 1 when a mutation is missed, a run
 * gives no report, or an anchor is missing from the source.
 */
const DEFAULT_ARGS = ['--shards=2', '--events=1500', '--faults=25', '--rate=250', '--seed=1'];

async function runOn(name: string, mutation: (typeof LIBRARY_MUTATIONS)[number] | null, args: string[]): Promise<CopyRunResult> {
  const dir = prepareLibraryCopy(mutation);
  try {
    process.stdout.write(`mutations: running ${name} ...\n`);
    const result = await runChaosOnCopy(dir, args);
    process.stdout.write(`${result.report?.summary ?? result.tail.join('\n')}\n`);
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.length > 2 ? process.argv.slice(2) : DEFAULT_ARGS;
  // Every anchor is checked before anything runs, so that a stale one fails at once.
  for (const mutation of LIBRARY_MUTATIONS) rmSync(prepareLibraryCopy(mutation), { recursive: true, force: true });

  const baseline = await runOn('the library as it is', null, args);
  if (!baseline.report) throw new Error(`The run of the library as it is gave no report:\n${baseline.tail.join('\n')}`);
  const rows: string[] = [
    `| mutation | checker verdict | caught by |`,
    `| --- | --- | --- |`,
    `| none (the library as it is) | ${baseline.report.pass ? 'PASS' : `FAIL (${baseline.report.failedChecks.join(', ')})`} | |`,
  ];
  let allCaught = true;
  for (const mutation of LIBRARY_MUTATIONS) {
    const result = await runOn(mutation.name, mutation, args);
    const { verdict, caughtBy } = judgeMutation(baseline.report, result);
    if (verdict !== 'caught') allCaught = false;
    const messages = caughtBy.flatMap((check) => result.report?.violationsByCheck[check] ?? []);
    const why = verdict === 'error' ? 'no report' : caughtBy.map((check) => `\`${check}\``).join(', ');
    rows.push(`| ${mutation.description} | ${verdict} | ${why}${messages.length > 0 ? `: ${messages.join('; ')}` : ''} |`);
  }
  process.stdout.write(`\nchaos ${args.join(' ')}\n\n${rows.join('\n')}\n`);
  process.exitCode = allCaught ? 0 : 1;
}

main().catch((error: Error) => {
  process.stderr.write(`mutations: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
