import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// The shape lib/ keeps: files small enough to read at once, and imports that
// run one way (a cycle makes load order matter and hides what depends on what).

const LIB = resolve(__dirname, '../../lib');
const MAX_LINES = 300;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The lib/ files a file imports (type-only imports too: they are dependencies of the reader). */
function localImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'(\.{1,2}\/[^']+)'/gms)].map((m) => m[1]);
  return specifiers.map((specifier) => {
    const target = resolve(dirname(file), specifier);
    return files.includes(`${target}.ts`) ? `${target}.ts` : join(target, 'index.ts');
  });
}

const files = sourceFiles(LIB);

describe('lib/', () => {
  it(`has no file over ${MAX_LINES} lines`, () => {
    const long = files
      .map((file) => ({ file: relative(LIB, file), lines: readFileSync(file, 'utf8').trimEnd().split('\n').length }))
      .filter(({ lines }) => lines > MAX_LINES);
    expect(long).toEqual([]);
  });

  it('has no import cycle', () => {
    const graph = new Map(files.map((file) => [file, localImports(file)]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(LIB, f)).join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('finds the imports it checks (the check itself works)', () => {
    const imports = localImports(join(LIB, 'publishing/mo-events.service.ts')).map((f) => relative(LIB, f));
    expect(imports).toEqual(expect.arrayContaining(['runtime/mo-amqp-runtime.ts', 'events/mo-event.ts']));
  });
});
