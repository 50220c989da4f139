import { describe, it } from 'node:test';
import { expect } from 'expect';
import { dirname, join, relative } from 'node:path';
import * as ts from 'typescript';
import packageJson from '../../package.json';

const root = join(__dirname, '..', '..');

/** A declaration marked `@internal` in lib/: the file and the name path (`Class.member` or a top-level name). */
interface InternalDeclaration {
  file: string;
  name: string;
}

/** The declarations `npm run build` publishes, emitted in memory (nothing is written) with tsconfig.build.json. */
function emitDeclarations(): { files: Map<string, string>; diagnostics: readonly ts.Diagnostic[]; program: ts.Program; outDir: string } {
  const { config } = ts.readConfigFile(join(root, 'tsconfig.build.json'), ts.sys.readFile) as { config: unknown };
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, root);
  const program = ts.createProgram(parsed.fileNames, { ...parsed.options, noEmit: false, emitDeclarationOnly: true });
  const files = new Map<string, string>();
  const result = program.emit(undefined, (name, text) => files.set(name, text), undefined, true);
  return { files, diagnostics: result.diagnostics, program, outDir: parsed.options.outDir! };
}

function isInternal(node: ts.Node): boolean {
  return ts.getJSDocTags(node).some((tag) => tag.tagName.text === 'internal');
}

/** The names of a file's top-level declarations and class members (`Class.member`), with their nodes. */
function declarations(source: ts.SourceFile): [string, ts.Node][] {
  const found: [string, ts.Node][] = [];
  for (const statement of source.statements) {
    if (ts.isClassDeclaration(statement) && statement.name) {
      found.push([statement.name.text, statement]);
      for (const member of statement.members) {
        if (member.name && (ts.isIdentifier(member.name) || ts.isPrivateIdentifier(member.name))) {
          found.push([`${statement.name.text}.${member.name.text}`, member]);
        }
      }
    } else if ((ts.isFunctionDeclaration(statement) || ts.isInterfaceDeclaration(statement) || ts.isTypeAliasDeclaration(statement)) && statement.name) {
      found.push([statement.name.text, statement]);
    } else if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) {
        if (ts.isIdentifier(declaration.name)) found.push([declaration.name.text, statement]);
      }
    }
  }
  return found;
}

const emitted = emitDeclarations();

void describe('the published declarations', () => {
  void it('leave out every declaration marked @internal, and every @internal comment', () => {
    expect(emitted.diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
    const internal: InternalDeclaration[] = [];
    for (const source of emitted.program.getSourceFiles()) {
      const file = relative(join(root, 'lib'), source.fileName);
      if (file.startsWith('..') || source.isDeclarationFile) continue;
      for (const [name, node] of declarations(source)) if (isInternal(node)) internal.push({ file, name });
    }
    // The check below means something only while lib/ marks declarations @internal.
    expect(internal.length).toBeGreaterThan(0);
    const published = (file: string) => {
      const text = emitted.files.get(join(emitted.outDir, file.replace(/\.ts$/, '.d.ts')));
      expect(text).toBeDefined();
      return ts.createSourceFile(file, text!, ts.ScriptTarget.ES2022, true);
    };
    const left = internal.filter(({ file, name }) => declarations(published(file)).some(([declared]) => declared === name));
    expect(left).toEqual([]);
    const tagged = [...emitted.files].filter(([, text]) => text.includes('@internal')).map(([name]) => relative(emitted.outDir, name));
    expect(tagged).toEqual([]);
  });

  void it('type-check on their own from every entry point, with no library check skipped', () => {
    const entries = Object.values(packageJson.exports)
      .map((entry) => (typeof entry === 'object' ? entry.types : null))
      .filter((types): types is string => types !== null)
      .map((types) => join(root, types));
    expect(entries.length).toBe(6);
    for (const entry of entries) expect(emitted.files.has(entry)).toBe(true);
    const options: ts.CompilerOptions = {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      types: ['node'],
    };
    // Served from memory; everything else (node_modules) from the disk, as for an application next to dist/.
    const host = ts.createCompilerHost(options);
    const fileExists = host.fileExists.bind(host);
    const readFile = host.readFile.bind(host);
    host.fileExists = (name) => emitted.files.has(name) || fileExists(name);
    host.readFile = (name) => emitted.files.get(name) ?? readFile(name);
    host.directoryExists = (name) => [...emitted.files.keys()].some((file) => dirname(file).startsWith(name)) || ts.sys.directoryExists(name);
    const program = ts.createProgram(entries, options, host);
    const errors = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file ? `${relative(root, d.file.fileName)}: ` : '';
      return `${where}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(errors).toEqual([]);
  });
});
