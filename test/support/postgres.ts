import { Client } from 'pg';
import { migrateOutboxTable } from '../../lib/outbox/outbox-table';

/** The PostgreSQL the tests use: MO_PG_URL, or the one scripts/postgresql.sh ensures. */
export const PG_URL = process.env.MO_PG_URL || 'postgres://mo_amqp:mo_amqp@127.0.0.1:5432/mo_amqp_test';

let counter = 0;

/** A table name no other test (or run) uses. */
export function uniqueTable(prefix: string): string {
  return `t_${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`;
}

/** Runs one statement on a connection of its own. */
export async function sql<T extends object = Record<string, unknown>>(
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new Client({ connectionString: PG_URL });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

/** A migrated outbox table; `drop()` removes it and its trigger function. */
export async function outboxTable(prefix = 'outbox'): Promise<{ name: string; drop(): Promise<void> }> {
  const name = uniqueTable(prefix);
  await migrateOutboxTable({ outboxUrl: PG_URL, outboxTable: name });
  return {
    name,
    drop: async () => {
      await sql(`DROP TABLE IF EXISTS "${name}"`);
      await sql(`DROP FUNCTION IF EXISTS "${name}_notify"()`);
    },
  };
}
