import { createRequire } from 'node:module';

/** Runs one statement with `$1, $2, …` parameters through a transaction object. */
export type SqlRunner = (sql: string, params: readonly unknown[]) => Promise<unknown>;

type Fn = (...args: unknown[]) => unknown;
type Shape = Record<string, unknown>;

const requireHere = createRequire(__filename);

function isFn(value: unknown): value is Fn {
  return typeof value === 'function';
}

/** `$1, $2, …` to `?` (Knex), each number in order; our statements use each once, ascending. */
function questionMarks(sql: string): string {
  return sql.replace(/\$\d+/g, '?');
}

/** Drizzle's `sql` tag, called by hand: the text between `$n`s, and the values. */
function drizzleSql(sql: string, params: readonly unknown[]): unknown {
  const { sql: tag } = requireHere('drizzle-orm') as {
    sql: (strings: TemplateStringsArray, ...v: unknown[]) => unknown;
  };
  const pieces = sql.split(/\$\d+/);
  const strings = Object.assign([...pieces], { raw: [...pieces] }) as unknown as TemplateStringsArray;
  return tag(strings, ...params);
}

/**
 * The runner for the transaction object of a `@nestjs-cls/transactional`
 * adapter, recognised by its shape: TypeORM's `EntityManager` and
 * node-postgres' client (`query(sql, params)`), Drizzle (`execute(sql)`),
 * Prisma (`$executeRawUnsafe`), Knex (`raw`), Kysely (`executeQuery`),
 * pg-promise (`none`). Throws, naming what it got, for anything else.
 */
export function sqlRunnerFor(tx: unknown): SqlRunner {
  const t = (tx ?? {}) as Shape;
  if (isFn(t.$executeRawUnsafe)) {
    return (sql, params) => Promise.resolve((t.$executeRawUnsafe as Fn).call(t, sql, ...params));
  }
  if (isFn(t.execute) && t.dialect !== undefined && t.session !== undefined) {
    return (sql, params) => Promise.resolve((t.execute as Fn).call(t, drizzleSql(sql, params)));
  }
  if (isFn(t.executeQuery) && isFn(t.selectFrom)) {
    const { CompiledQuery } = requireHere('kysely') as { CompiledQuery: { raw(sql: string, p: unknown[]): unknown } };
    return (sql, params) => Promise.resolve((t.executeQuery as Fn).call(t, CompiledQuery.raw(sql, [...params])));
  }
  if (isFn(t.raw) && isFn(t.commit) && t.client !== undefined) {
    return (sql, params) => Promise.resolve((t.raw as Fn).call(t, questionMarks(sql), [...params]));
  }
  if (isFn(t.none) && isFn(t.oneOrNone)) {
    return (sql, params) => Promise.resolve((t.none as Fn).call(t, sql, [...params]));
  }
  if (isFn(t.query)) {
    return (sql, params) => Promise.resolve((t.query as Fn).call(t, sql, [...params]));
  }
  const kind = tx === null || tx === undefined ? String(tx) : (tx.constructor?.name ?? typeof tx);
  throw new TypeError(
    `the outbox cannot write through the transaction of @nestjs-cls/transactional (${kind}): ` +
      'TypeORM, Drizzle, node-postgres, Prisma, Knex, Kysely and pg-promise transactions are recognised (see docs/outbox.md)',
  );
}
