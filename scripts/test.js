#!/usr/bin/env node
// Runs every test/**/*.spec.ts with Node's test runner (TypeScript through ts-node, decorator metadata included).
// Usage: node scripts/test.js [path-filter ...]
'use strict';
const { spawnSync } = require('node:child_process');
const { readdirSync, statSync } = require('node:fs');
const { join, relative } = require('node:path');

const root = join(__dirname, '..');

function findSpecs(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findSpecs(path));
    else if (name.endsWith('.spec.ts')) found.push(relative(root, path));
  }
  return found.sort();
}

const filters = process.argv.slice(2);
const specs = findSpecs(join(root, 'test')).filter((spec) => filters.length === 0 || filters.some((f) => spec.includes(f)));
if (specs.length === 0) {
  console.error(`No test files match ${filters.join(' ')}`);
  process.exit(1);
}

const result = spawnSync(
  process.execPath,
  [
    '--require',
    'ts-node/register/transpile-only',
    '--test',
    '--test-reporter=spec',
    '--test-concurrency=2',
    '--test-timeout=120000',
    ...specs,
  ],
  { cwd: root, stdio: 'inherit', env: { ...process.env, TS_NODE_PROJECT: join(root, 'tsconfig.json') } },
);
process.exit(result.status ?? 1);
