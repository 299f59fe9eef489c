import { ClsPluginTransactional } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { DynamicModule } from '@nestjs/common';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { ClsModule } from 'nestjs-cls';
import { Client } from 'pg';
import { EntitySchema } from 'typeorm';
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

/** TypeORM on the test database with @nestjs-cls/transactional's plugin, as an app using the outbox has them. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- TypeORM takes entity classes of any shape
export function typeOrmTransactions(entities: (Function | EntitySchema)[] = []): DynamicModule[] {
  return [
    TypeOrmModule.forRoot({ type: 'postgres', url: PG_URL, entities, synchronize: entities.length > 0 }),
    ClsModule.forRoot({
      global: true,
      plugins: [
        new ClsPluginTransactional({
          imports: [TypeOrmModule],
          adapter: new TransactionalAdapterTypeOrm({ dataSourceToken: getDataSourceToken() }),
        }),
      ],
    }),
  ];
}
