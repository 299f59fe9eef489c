import { createRequire } from 'node:module';
import type * as PgModule from 'pg';
import { MoAmqpOutboxOptions, OUTBOX_FIELDS } from '../config/outbox-options';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { outboxMigrationSql } from './outbox-sql';

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

/** A client of its own for one task, ended after it; connecting is bounded (5 s). */
export async function withClient<T>(options: TableOptions, use: (client: PgModule.Client) => Promise<T>): Promise<T> {
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
