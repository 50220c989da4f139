#!/usr/bin/env node
// Runs test/**/*.spec.ts with Node's test runner: TypeScript through ts-node, which transpiles with swc (tsconfig.json's
// "ts-node" section; decorator metadata included), in the test processes and in every process and worker thread they start.
// Usage: node scripts/test.js [--tier=unit|integration|distributed] [path-filter ...]
// Tiers: unit is test/unit/ (no sockets, no services); distributed is every spec that starts processes of its own
// (it imports node:child_process, or the bot processes of test/redis/fixtures/bot-process); integration is the rest
// (real sockets, real redis-server).
'use strict';
const { spawnSync } = require('node:child_process');
const { readdirSync, readFileSync, statSync } = require('node:fs');
const { join, relative, sep } = require('node:path');

const root = join(__dirname, '..');
const TIERS = ['unit', 'integration', 'distributed'];

function findSpecs(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findSpecs(path));
    else if (name.endsWith('.spec.ts')) found.push(relative(root, path));
  }
  return found.sort();
}

function tierOf(spec) {
  if (spec.startsWith(`test${sep}unit${sep}`)) return 'unit';
  return /from '(node:child_process|\.\/fixtures\/bot-process)'/.test(readFileSync(join(root, spec), 'utf8')) ? 'distributed' : 'integration';
}

const args = process.argv.slice(2);
const tierArg = args.find((arg) => arg.startsWith('--tier='));
const tier = tierArg ? tierArg.slice('--tier='.length) : null;
if (tier !== null && !TIERS.includes(tier)) {
  console.error(`Unknown tier "${tier}": use one of ${TIERS.join(', ')}`);
  process.exit(2);
}
const filters = args.filter((arg) => !arg.startsWith('--tier='));
const specs = findSpecs(join(root, 'test'))
  .filter((spec) => tier === null || tierOf(spec) === tier)
  .filter((spec) => filters.length === 0 || filters.some((f) => spec.includes(f)));
if (specs.length === 0) {
  console.error(`No test files match ${[tierArg, ...filters].filter(Boolean).join(' ')}`);
  process.exit(1);
}

// The kill -9 duplicates test (four kills of a bot process, each after a stream of events) runs last, alone: it
// waits for its bot process to keep up with the stream, which a CPU-heavy neighbour can delay for minutes.
const ALONE = /^test[\\/]redis[\\/]kill-duplicates\.spec\.ts$/;
// The other files spend most of their time waiting on sockets, Redis and child processes rather than computing, and
// wait on events rather than on fixed delays: four run at once on two cores (TEST_CONCURRENCY overrides it). The
// files that start processes of their own (the distributed tier: bot processes, the install tests that pack the
// package and install a project) take longest, so they start first and the short files fill in around them. A file
// may take 10 minutes (a bound, not a target): the install tests take minutes when the machine's cores are busy.
const concurrency = Number.parseInt(process.env.TEST_CONCURRENCY ?? '', 10) || 4;
const longFirst = (list) => [...list.filter((spec) => tierOf(spec) === 'distributed'), ...list.filter((spec) => tierOf(spec) !== 'distributed')];
const runs = [
  { specs: longFirst(specs.filter((spec) => !ALONE.test(spec))), timeout: 600000, concurrency },
  { specs: specs.filter((spec) => ALONE.test(spec)), timeout: 600000, concurrency: 1 },
].filter((run) => run.specs.length > 0);

let status = 0;
for (const run of runs) {
  const result = spawnSync(
    process.execPath,
    [
      '--require',
      'ts-node/register/transpile-only',
      '--test',
      '--test-reporter=spec',
      `--test-concurrency=${run.concurrency}`,
      `--test-timeout=${run.timeout}`,
      ...run.specs,
    ],
    { cwd: root, stdio: 'inherit', env: { ...process.env, TS_NODE_PROJECT: join(root, 'tsconfig.json') } },
  );
  if (result.status !== 0) status = result.status ?? 1;
}
process.exit(status);
