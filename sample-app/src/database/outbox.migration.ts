import { outboxMigrationSql } from 'nestjs-mo-amqp';
import type { MigrationInterface, QueryRunner } from 'typeorm';

function quoted(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part}"`)
    .join('.');
}

/**
 * The outbox table (AMQP__OUTBOX_TABLE) as a TypeORM migration: the library's
 * SQL, the same `npx mo-amqp outbox migrate` runs. TypeORM runs it at start-up
 * (`migrationsRun`), once: it records it in the `migrations` table of the schema.
 */
export function outboxMigration(table: string): new () => MigrationInterface {
  return class MoAmqpOutbox1764460800000 implements MigrationInterface {
    readonly name = 'MoAmqpOutbox1764460800000';

    async up(queryRunner: QueryRunner): Promise<void> {
      await queryRunner.query(outboxMigrationSql(table));
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await queryRunner.query(`DROP TABLE IF EXISTS ${quoted(table)}`);
      await queryRunner.query(`DROP FUNCTION IF EXISTS ${quoted(`${table}_notify`)}()`);
    }
  };
}
