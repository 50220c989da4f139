import { after, before, describe, it } from 'node:test';
import { expect } from 'expect';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childEnv, expectSuccess, packPackage, run, type Run } from '../helpers/packed-package';

// The framework-free core, used by a project that has no Nest: the package as `npm pack` makes it, installed with
// `--omit=peer` (so npm leaves out the peers @nestjs/common, @nestjs/core and reflect-metadata) next to ws and rxjs
// (the core's events are rxjs Observables), from npm's cache where it can. A plain `node -e` script then starts the
// local gateway from `nestjs-discord-gateway/core`, runs a shard against it to READY and one dispatch, and stops.

const ROOT = join(__dirname, '..', '..');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string>; dependencies: Record<string, string> };

const SCRIPT = `
const { LocalGateway, Shard, createMessage } = require('nestjs-discord-gateway/core');
(async () => {
  const gateway = await LocalGateway.start({ shards: 1 });
  const shard = new Shard({ id: 0, total: 1, token: gateway.token, intents: 513, gatewayUrl: gateway.url });
  const states = [];
  shard.state$.subscribe((state) => states.push(state));
  const received = new Promise((resolve) => shard.dispatch$.subscribe((event) => event.t === 'MESSAGE_CREATE' && resolve(event)));
  await shard.connect();
  const sent = createMessage(7, { content: 'no Nest here' });
  gateway.dispatch(0, 'MESSAGE_CREATE', sent);
  const event = await received;
  await shard.close();
  await gateway.close();
  const nest = Object.keys(require.cache).filter((path) => /node_modules[\\\\/](@nestjs|reflect-metadata)[\\\\/]/.test(path));
  process.stdout.write(JSON.stringify({ states, t: event.t, sameId: event.d.id === sent.id, content: event.d.content, nest }));
})().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exit(1);
});
`;

/** `node -e <code>` in `cwd`, as a user would run it there (no ts-node, no test-runner environment). */
function nodeEval(code: string, cwd: string): Run {
  const result = spawnSync(process.execPath, ['-e', code], { cwd, env: childEnv(), encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? `\n${result.error.message}` : ''}` };
}

void describe('nestjs-discord-gateway/core in a project without Nest', { timeout: 600_000 }, () => {
  let work = '';
  let project = '';

  before(
    () => {
      work = mkdtempSync(join(tmpdir(), 'ndg-core-'));
      const tarball = packPackage(ROOT, work);
      project = join(work, 'app');
      mkdirSync(project);
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }, null, 2));
      const specs = [tarball, `ws@${PACKAGE.dependencies.ws}`, `rxjs@${PACKAGE.devDependencies.rxjs}`];
      const installed = run('npm', ['install', '--omit=peer', '--prefer-offline', '--no-audit', '--no-fund', ...specs], project, 300_000);
      expectSuccess(installed, `npm install --omit=peer ${specs.join(' ')}`);
    },
    { timeout: 480_000 },
  );

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  void it('runs a shard against the local gateway from /core to READY, receives a dispatch, and stops, with no Nest installed', () => {
    // The project really has no Nest: none installed, and the main entry (the Nest module) cannot load.
    const modules = readdirSync(join(project, 'node_modules'));
    expect(modules).toEqual(expect.arrayContaining(['nestjs-discord-gateway', 'ws', 'rxjs']));
    expect(modules).not.toContain('@nestjs');
    expect(modules).not.toContain('reflect-metadata');
    const main = nodeEval("require('nestjs-discord-gateway')", project);
    expect(main.status).not.toBe(0);
    expect(main.output).toMatch(/Cannot find module '@nestjs\/(common|core)[/']/);

    const result = nodeEval(SCRIPT, project);
    expectSuccess(result, 'node -e <core script>');
    const report = JSON.parse(result.output) as { states: string[]; t: string; sameId: boolean; content: string; nest: string[] };
    expect(report.states).toContain('ready');
    expect(report.states[report.states.length - 1]).toBe('disconnected');
    expect(report).toMatchObject({ t: 'MESSAGE_CREATE', sameId: true, content: 'no Nest here', nest: [] });
  });
});
