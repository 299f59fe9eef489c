import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import * as ts from 'typescript';
import { MO_AMQP_FIELDS } from '../../lib/config/mo-amqp-options.schema';
import { OptionSpec } from '../../lib/config/option-table';
import { DELAY_AGENT_FIELDS } from '../../lib/delay/mo-delay-agent.config';
import { sourceFiles } from '../support/source-files';

// The option tables are the one declaration of each environment variable; README.md's
// table of variables is written by hand. These keep the two, and the code, in step.

const ROOT = resolve(__dirname, '../..');
const LIB = join(ROOT, 'lib');

const TABLES: { name: string; fields: Readonly<Record<string, OptionSpec>>; file: string; face: string }[] = [
  {
    name: 'MO_AMQP_FIELDS',
    fields: MO_AMQP_FIELDS,
    file: 'lib/config/mo-amqp-options.interface.ts',
    face: 'MoAmqpModuleOptions',
  },
  {
    name: 'DELAY_AGENT_FIELDS',
    fields: DELAY_AGENT_FIELDS,
    file: 'lib/delay/mo-delay-agent.options.ts',
    face: 'MoDelayAgentOptions',
  },
];

/** Each variable of the tables, with its option key. */
const declared = new Map(
  TABLES.flatMap(({ fields }) => Object.entries(fields).map(([key, spec]) => [spec.env, key] as const)),
);

/** The rows of README.md's table of variables ("## Configuration"): variable -> `forRoot` option column. */
function readmeRows(readme: string): Map<string, string> {
  const section = readme.split(/^## /m).find((part) => part.startsWith('Configuration\n')) ?? '';
  const rows = [...section.matchAll(/^\| `([A-Z][A-Z0-9_]*)` +\| ([^|]*)\|/gm)];
  return new Map(rows.map(([, name, option]) => [name, option.trim()]));
}

/**
 * The variables a source text reads or names: `process.env.X`, `env.X`, `env['X']`,
 * and any `ENABLE_AMQP` or `AMQP__X` in it (code, messages, docs). `AMQP__TLS_*`
 * is a prefix, kept with its star.
 */
function namesIn(text: string): string[] {
  const reads = [...text.matchAll(/\benv(?:\.|\[\s*['"`])([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]);
  const named = [...text.matchAll(/\b(ENABLE_AMQP|AMQP__[A-Z0-9_]*)\b(\*?)/g)].map((m) => m[1] + m[2]);
  return [...reads, ...named];
}

/** `name` where lib/ has it, for each name not among the tables' variables (a prefix: none of them starts so). */
function undeclaredIn(files: readonly string[]): string[] {
  return files.flatMap((file) =>
    [...new Set(namesIn(readFileSync(file, 'utf8')))]
      .filter((name) =>
        name.endsWith('*')
          ? ![...declared.keys()].some((env) => env.startsWith(name.slice(0, -1)))
          : !declared.has(name),
      )
      .map((name) => `${name} in lib/${relative(LIB, file)}`),
  );
}

/** The doc comment of each property of `face` in `file`, on one line. */
function docsOf(file: string, face: string): Map<string, string> {
  const source = ts.createSourceFile(file, readFileSync(join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const found = source.statements.find(
    (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === face,
  );
  if (!found) throw new Error(`no interface ${face} in ${file}`);
  return new Map(
    found.members.map((member) => {
      const doc = ts.getJSDocCommentsAndTags(member).map((d) => ts.getTextOfJSDocComment(d.comment) ?? '');
      return [(member.name as ts.Identifier).text, doc.join(' ').replace(/\s+/g, ' ').trim()];
    }),
  );
}

describe('the environment variables', () => {
  const rows = readmeRows(readFileSync(join(ROOT, 'README.md'), 'utf8'));

  it("each has a row in README.md's table, under its option", () => {
    const missing = [...declared].filter(([env]) => !rows.has(env)).map(([env]) => env);
    expect(missing).toEqual([]);
    const misnamed = [...declared]
      .filter(([env, key]) => rows.has(env) && !rows.get(env)!.endsWith(`\`${key}\``))
      .map(([env, key]) => `${env}: README says ${rows.get(env)}, the table ${key}`);
    expect(misnamed).toEqual([]);
  });

  it("each row of README.md's table is a variable the code reads", () => {
    expect([...rows.keys()].filter((name) => !declared.has(name))).toEqual([]);
  });

  it('lib/ reads and names none but those of the tables', () => {
    expect(undeclaredIn(sourceFiles(LIB))).toEqual([]);
  });

  it.each(TABLES)("$name: each option's doc line opens its doc comment in $face", ({ fields, file, face }) => {
    const docs = docsOf(file, face);
    expect([...docs.keys()]).toEqual(Object.keys(fields));
    const differ = Object.entries(fields)
      .filter(([key, spec]) => !docs.get(key)!.startsWith(spec.doc))
      .map(([key, spec]) => `${key}: "${spec.doc}" does not open "${docs.get(key)}"`);
    expect(differ).toEqual([]);
  });

  it('finds what it checks (the checks themselves work)', () => {
    expect(rows.size).toBeGreaterThan(20);
    expect(rows.get('AMQP__DELAY_PREFIX')).toBe('`MoDelayAgentModule`: `prefix`');
    expect(namesIn("env.AMQP__X; process.env['NODE_ENV']; see `AMQP__TLS_*`, ENABLE_AMQP")).toEqual([
      'AMQP__X',
      'NODE_ENV',
      'AMQP__X',
      'AMQP__TLS_*',
      'ENABLE_AMQP',
    ]);
    expect(namesIn(readFileSync(join(LIB, 'runtime/publish-failure.ts'), 'utf8'))).toContain('AMQP__SPOOL_MAX_BYTES');
  });
});
