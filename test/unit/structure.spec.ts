import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { sourceFiles } from '../support/source-files';

// The shape lib/ keeps: files small enough to read at once, and imports that
// run one way (a cycle makes load order matter and hides what depends on what).

const LIB = resolve(__dirname, '../../lib');
const MAX_LINES = 300;

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

/**
 * The folders of lib/ from the top down (docs/development.md, "Layout"): a file
 * may import its own folder and the layers below its own, never one above nor a
 * sibling in its layer. Files at the top of lib/ are named by their file name.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['index.ts'],
  ['cli', 'testing'],
  ['mo-amqp.module.ts'],
  ['health'],
  ['publishing', 'subscribing', 'delay'],
  ['mo-amqp.module-definition.ts'],
  ['outbox'],
  ['runtime'],
  ['config', 'spool', 'telemetry'],
  ['events'],
  ['errors'],
  ['util', 'mo-amqp.constants.ts'],
];

/** The folder (or top-level file) of a lib/ path, e.g. `runtime` for `runtime/exchanges.ts`. */
function placeOf(path: string): string {
  return path.split('/')[0];
}

function layerOf(place: string): number {
  const layer = LAYERS.findIndex((places) => places.includes(place));
  if (layer < 0) throw new Error(`lib/${place} is in no layer of structure.spec.ts: place it`);
  return layer;
}

/** Imports (from -> to, paths relative to lib/) that run up, or sideways between folders of one layer. */
function layerViolations(imports: readonly (readonly [from: string, to: string])[]): string[] {
  return imports
    .filter(([from, to]) => {
      const [a, b] = [placeOf(from), placeOf(to)];
      return a !== b && layerOf(a) >= layerOf(b);
    })
    .map(([from, to]) => `${from} -> ${to}`);
}

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

  it('has imports that run one way between folders, from the top down', () => {
    const imports = files.flatMap((file) =>
      localImports(file).map((to) => [relative(LIB, file), relative(LIB, to)] as const),
    );
    expect(layerViolations(imports)).toEqual([]);
  });

  it('places every folder of lib/ in a layer', () => {
    const places = new Set(files.map((file) => placeOf(relative(LIB, file))));
    expect([...places].filter((place) => !LAYERS.flat().includes(place))).toEqual([]);
  });

  it('refuses an import running back up, or sideways (the check itself works)', () => {
    expect(
      layerViolations([
        ['runtime/mo-amqp-runtime.ts', 'outbox/transaction-writer.ts'],
        ['publishing/mo-events.service.ts', 'subscribing/subscriptions.ts'],
        ['outbox/outbox-relay.ts', 'runtime/mo-amqp-runtime.ts'],
        ['runtime/exchanges.ts', 'runtime/amqp-internals.ts'],
      ]),
    ).toEqual([
      'runtime/mo-amqp-runtime.ts -> outbox/transaction-writer.ts',
      'publishing/mo-events.service.ts -> subscribing/subscriptions.ts',
    ]);
  });

  it('finds the imports it checks (the check itself works)', () => {
    const imports = localImports(join(LIB, 'publishing/mo-events.service.ts')).map((f) => relative(LIB, f));
    expect(imports).toEqual(expect.arrayContaining(['runtime/mo-amqp-runtime.ts', 'events/mo-event.ts']));
  });
});
