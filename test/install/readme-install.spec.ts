import { after, before, describe, it } from 'node:test';
import { expect } from 'expect';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childEnv, expectSuccess, packPackage, run, type Run } from '../helpers/packed-package';

// Installs the package the way README's Install section says, into a new project: the package as `npm pack` makes
// it, plus exactly the packages the section lists. Then README's examples are type-checked under each documented
// moduleResolution, and README's example bot test runs under node:test, Jest and Vitest with README's recipes.
// Packing and installing happen once; every test below reuses the project. `INSTALL_TEST_NODE` may name another
// node binary to run the tests with (e.g. a Node 22 build); by default the runners use this process's Node.

const ROOT = join(__dirname, '..', '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const RUN_NODE = process.env.INSTALL_TEST_NODE || process.execPath;
const RUN_NODE_VERSION = spawnSync(RUN_NODE, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();

/** A README section: from its `## title` heading to the next `## ` heading. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no "## ${title}" section`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** The fenced code blocks of `text`, with their language. */
function codeBlocks(text: string): { lang: string; code: string }[] {
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], code: m[2] }));
}

/** The README code block whose first line is `// <label>`, without that line. */
function labelledBlock(label: string): string {
  const found = codeBlocks(README).filter((block) => block.code.startsWith(`// ${label}\n`));
  if (found.length !== 1) throw new Error(`README has ${found.length} code blocks labelled "// ${label}"`);
  return found[0].code.slice(`// ${label}\n`.length);
}

/** The README command line that starts with `prefix`. */
function commandLine(prefix: string): string {
  const lines = codeBlocks(README)
    .filter((block) => block.lang === 'bash')
    .flatMap((block) => block.code.split('\n'))
    .filter((line) => line.startsWith(prefix));
  if (lines.length !== 1) throw new Error(`README has ${lines.length} command lines starting with "${prefix}"`);
  return lines[0];
}

/** Like {@link run}, without blocking: for the type-checks, which run side by side. */
function runAsync(command: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => (output += `\n${error.message}`));
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

void describe('README Install section, followed on a new project', { timeout: 600_000 }, () => {
  const pairs = [...section('Install').matchAll(/^\| `(\w+)` \| `(\w+)` \|/gm)]
    .map((m) => ({ resolution: m[1], module: m[2] }))
    .filter((pair) => pair.resolution !== 'moduleResolution');
  let work = '';
  let project = '';
  let tarball = '';
  let installOutput = '';
  /** The type-checks by moduleResolution; `node10` is README's own build command, which also emits for node:test. */
  const checks = new Map<string, Run>();

  before(
    async () => {
      work = mkdtempSync(join(tmpdir(), 'ndg-install-'));
      tarball = packPackage(ROOT, work);

      project = join(work, 'bot');
      mkdirSync(join(project, 'src'), { recursive: true });
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'bot', version: '1.0.0', private: true }, null, 2));

      // Every package the Install section lists (one install: the lists only add up), this package as the tarball.
      // A package named without a version gets the range this repository uses (the registry's newest may differ).
      const lines = codeBlocks(section('Install'))
        .filter((block) => block.lang === 'bash')
        .flatMap((block) => block.code.split('\n'))
        .filter((line) => line.startsWith('npm install '));
      expect(lines.length).toBeGreaterThanOrEqual(4);
      const specs = lines
        .flatMap((line) => line.slice('npm install '.length).split(/\s+/))
        .filter((word) => word !== '' && !word.startsWith('-'))
        .map((spec) => {
          if (spec === PACKAGE.name) return tarball;
          if (/.@/.test(spec)) return spec;
          const range = PACKAGE.dependencies[spec] ?? PACKAGE.devDependencies[spec];
          return range ? `${spec}@${range}` : spec;
        });
      const installed = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...specs], project, 300_000);
      expectSuccess(installed, `npm install ${specs.join(' ')}`);
      installOutput = installed.output;

      writeFileSync(join(project, 'tsconfig.json'), codeBlocks(section('Install')).find((block) => block.lang === 'json')!.code);
      writeFileSync(join(project, 'src', 'app.module.ts'), labelledBlock('app.module.ts'));
      writeFileSync(join(project, 'src', 'greeter.handler.ts'), labelledBlock('greeter.handler.ts'));
      writeFileSync(join(project, 'src', 'local-gateway.demo.ts'), labelledBlock('local-gateway.demo.ts'));
      // The spec as the node:test recipe says: README's lines for node:test on top of README's spec.
      writeFileSync(join(project, 'src', 'greeter.handler.spec.ts'), labelledBlock('with node:test') + labelledBlock('greeter.handler.spec.ts'));

      // README's settings are `"module": "commonjs"`, i.e. node10 resolution: its build is that type-check. The
      // other documented pairs are checked without output. All at once: each takes a while with skipLibCheck false.
      const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc');
      const results = await Promise.all(
        pairs.map(({ resolution, module }) =>
          resolution === 'node10'
            ? runAsync(process.execPath, [tsc, '-p', 'tsconfig.json'], project, 240_000)
            : runAsync(process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit', '--module', module, '--moduleResolution', resolution], project, 240_000),
        ),
      );
      pairs.forEach(({ resolution }, i) => checks.set(resolution, results[i]));
    },
    { timeout: 480_000 },
  );

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  void it('lists discord-api-types with the range this package depends on', () => {
    expect(commandLine('npm install nestjs-discord-gateway ')).toContain(` discord-api-types@${PACKAGE.dependencies['discord-api-types']}`);
  });

  void it('packs a LICENSE, and no source map whose sources are missing', () => {
    const files = run('tar', ['tzf', tarball], work, 30_000);
    expectSuccess(files, 'tar tzf');
    const list = files.output.trim().split('\n');
    expect(list).toContain('package/LICENSE');
    expect(readFileSync(join(project, 'node_modules', PACKAGE.name, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} nestjs-discord-gateway contributors\n/);
    for (const map of list.filter((file) => file.endsWith('.map'))) {
      const { sources } = JSON.parse(readFileSync(join(project, 'node_modules', PACKAGE.name, map.slice('package/'.length)), 'utf8')) as { sources: string[] };
      for (const source of sources) expect(list).toContain(join(map.slice(0, map.lastIndexOf('/')), source));
    }
  });

  void it('warns EBADENGINE on this Node only for what README names (file-type, on Node < 22)', () => {
    const warned = new Set([...installOutput.matchAll(/EBADENGINE\s+package: '([^@']+)@/g)].map((m) => m[1]));
    const major = Number(process.versions.node.split('.')[0]);
    expect([...warned]).toEqual(major < 22 ? ['file-type'] : []);
    expect(section('Install')).toContain('npm warns `EBADENGINE` for `file-type`');
  });

  void it('documents node10 (README\'s settings), nodenext and bundler resolution', () => {
    expect(pairs).toEqual([
      { resolution: 'node10', module: 'commonjs' },
      { resolution: 'nodenext', module: 'nodenext' },
      { resolution: 'bundler', module: 'preserve' },
    ]);
    expect(JSON.parse(codeBlocks(section('Install')).find((block) => block.lang === 'json')!.code).compilerOptions).toMatchObject({
      module: 'commonjs',
      skipLibCheck: false,
      strict: true,
    });
  });

  for (const { resolution, module } of pairs) {
    void it(`type-checks README's examples with skipLibCheck: false under moduleResolution ${resolution} (module ${module})`, () => {
      expectSuccess(checks.get(resolution)!, `tsc --module ${module} --moduleResolution ${resolution}`);
    });
  }

  void it(`runs README's example bot test under node:test (Node ${RUN_NODE_VERSION}), as the recipe says`, () => {
    // The build half of the command ran in before() as the node10 type-check.
    const [build, test] = commandLine('npx tsc -p tsconfig.json && node --test ').split(' && ');
    expect(build).toBe('npx tsc -p tsconfig.json');
    expectSuccess(checks.get('node10')!, build);
    const tested = run(RUN_NODE, test.split(' ').slice(1), project, 120_000);
    expectSuccess(tested, test);
    expect(tested.output).toMatch(/^# pass 3$/m);
    expect(tested.output).toMatch(/^# fail 0$/m);
  });

  void it(`runs README's local-gateway example to its end (Node ${RUN_NODE_VERSION})`, () => {
    const demo = run(RUN_NODE, ['dist/local-gateway.demo.js'], project, 60_000);
    expectSuccess(demo, 'node dist/local-gateway.demo.js');
  });

  void it(`runs README's example bot test under Jest with README's config (Node ${RUN_NODE_VERSION})`, () => {
    writeFileSync(join(project, 'src', 'greeter.handler.spec.ts'), labelledBlock('greeter.handler.spec.ts'));
    writeFileSync(join(project, 'jest.config.js'), labelledBlock('jest.config.js'));
    expect(commandLine('npx jest')).toBe('npx jest');
    const tested = run(RUN_NODE, [join(project, 'node_modules', 'jest', 'bin', 'jest.js')], project, 120_000);
    expectSuccess(tested, 'npx jest');
    expect(tested.output).toMatch(/^Tests: +3 passed, 3 total$/m);
  });

  void it(`fails under Jest without the @nestjs transform with the error README quotes, before Node 24.9 (Node ${RUN_NODE_VERSION})`, () => {
    writeFileSync(join(project, 'src', 'greeter.handler.spec.ts'), labelledBlock('greeter.handler.spec.ts'));
    // README's config less its transformIgnorePatterns: Jest's default leaves node_modules untransformed.
    const config = labelledBlock('jest.config.js').replace(/^ {2}transformIgnorePatterns: .*\n/m, '');
    expect(config).not.toContain('transformIgnorePatterns');
    writeFileSync(join(project, 'jest.plain.config.js'), config);
    const tested = run(RUN_NODE, [join(project, 'node_modules', 'jest', 'bin', 'jest.js'), '-c', 'jest.plain.config.js'], project, 120_000);
    const [major, minor] = RUN_NODE_VERSION.split('.').map(Number);
    if (major > 24 || (major === 24 && minor >= 9)) {
      expectSuccess(tested, 'jest without the transform on Node 24.9+');
    } else {
      expect(tested.status).not.toBe(0);
      expect(tested.output).toContain('Must use import to load ES Module: ');
      expect(tested.output).toMatch(/node_modules\/@nestjs\/testing\/index\.js/);
      expect(section('Testing your bot')).toContain('`Must use import to load ES Module:\n.../node_modules/@nestjs/testing/index.js`');
    }
  });

  void it(`runs README's example bot test under Vitest with README's config (Node ${RUN_NODE_VERSION})`, () => {
    writeFileSync(join(project, 'src', 'greeter.handler.spec.ts'), labelledBlock('greeter.handler.spec.ts'));
    writeFileSync(join(project, 'vitest.config.mts'), labelledBlock('vitest.config.mts'));
    expect(commandLine('npx vitest run')).toBe('npx vitest run');
    const tested = run(RUN_NODE, [join(project, 'node_modules', 'vitest', 'vitest.mjs'), 'run'], project, 120_000);
    expectSuccess(tested, 'npx vitest run');
    expect(tested.output).toMatch(/Tests +3 passed \(3\)/);
  });
});
