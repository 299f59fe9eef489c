import { createRequire } from 'node:module';
import type * as PgModule from 'pg';
import { MoAmqpOutboxOptions, OUTBOX_FIELDS, redactPostgresUrl } from '../config/outbox-options';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { OUTBOX_LAYOUT, checkSql, layoutSql, outboxMigrationSql } from './outbox-sql';

/** `pg` (node-postgres), an optional peer: loaded only when the outbox is on. */
export function loadPg(): typeof PgModule {
  try {
    return createRequire(__filename)('pg') as typeof PgModule;
  } catch {
    throw new MoAmqpConfigError([
      {
        name: `${OUTBOX_FIELDS.outbox.env} (outbox)`,
        received: "'postgres'",
        allowed: 'postgres only with the pg package installed (npm install pg)',
      },
    ]);
  }
}

type TableOptions = Pick<MoAmqpOutboxOptions, 'outboxUrl' | 'outboxTable'>;

async function withClient<T>(options: TableOptions, use: (client: PgModule.Client) => Promise<T>): Promise<T> {
  const { Client } = loadPg();
  const client = new Client({ connectionString: options.outboxUrl, connectionTimeoutMillis: 5_000 });
  // An error after connect (the server gone) must not be an unhandled 'error' event.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Checks that the table exists with the columns and layout this version uses.
 * Throws `MoAmqpConfigError` naming the table and the command that creates it;
 * a database that cannot be reached rejects with the driver's error.
 */
export async function checkOutboxTable(options: TableOptions, redact: (err: unknown) => string): Promise<void> {
  const table = options.outboxTable;
  const problem = (why: string) =>
    new MoAmqpConfigError([
      {
        name: `${OUTBOX_FIELDS.outboxTable.env} (outboxTable)`,
        received: `'${table}'`,
        allowed: `a table made by \`npx mo-amqp outbox migrate\` (or outboxMigrationSql() in your migrations) in ${redactPostgresUrl(options.outboxUrl ?? '')}: ${why}`,
      },
    ]);
  await withClient(options, async (client) => {
    try {
      await client.query(checkSql(table));
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === '42P01') throw problem('it does not exist');
      if (code === '42703') throw problem(`a column is missing (${redact(err)})`);
      if (code === '42501') throw problem(`this user may not read it (${redact(err)})`);
      throw err;
    }
    const { rows } = await client.query<{ layout: string | null }>(layoutSql(table));
    if (rows[0]?.layout !== OUTBOX_LAYOUT) {
      throw problem(`its comment says ${JSON.stringify(rows[0]?.layout ?? null)}, not '${OUTBOX_LAYOUT}'`);
    }
  });
}

/** Creates (or completes) the outbox table; idempotent, and one migration at a time per table. */
export async function migrateOutboxTable(options: TableOptions): Promise<void> {
  await withClient(options, async (client) => {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`migrate ${options.outboxTable}`]);
      await client.query(outboxMigrationSql(options.outboxTable));
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}
