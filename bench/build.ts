import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';

/**
 * Transpiles `lib/` and `bench/` to JavaScript (module by module, as `ts-node --transpile-only` does) so that the
 * load server and the clients run as plain `node` processes: a client that loaded the TypeScript compiler would
 * carry its ~100 MB in every RSS figure. Done at each start of the benchmark, so it always runs the current code.
 */
export function transpileForBench(root: string, outDir: string): number {
  const configPath = join(root, 'tsconfig.json');
  const read = ts.readConfigFile(configPath, (path) => ts.sys.readFile(path));
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const { options } = ts.parseJsonConfigFileContent(read.config, ts.sys, root);
  const compilerOptions: ts.CompilerOptions = { ...options, declaration: false, sourceMap: false, inlineSourceMap: false, noEmit: false };
  rmSync(outDir, { recursive: true, force: true });
  let files = 0;
  for (const dir of ['lib', 'bench']) {
    for (const file of walk(join(root, dir))) {
      const output = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions, fileName: file });
      const target = join(outDir, relative(root, file)).replace(/\.ts$/, '.js');
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, output.outputText);
      files++;
    }
  }
  return files;
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}
