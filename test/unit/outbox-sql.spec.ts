import { MoAmqpConfigError, outboxMigrationSql } from '../../lib';
import { batchSql, deleteSql, insertSql, notifyChannel, quotedTable } from '../../lib/outbox/outbox-sql';
import { sqlRunnerFor } from '../../lib/outbox/sql-runners';

describe('outbox SQL', () => {
  it('quotes the table, schema and name apart', () => {
    expect(quotedTable('mo_amqp_outbox')).toBe('"mo_amqp_outbox"');
    expect(quotedTable('events.outbox')).toBe('"events"."outbox"');
    expect(insertSql('events.outbox')).toMatch(/^INSERT INTO "events"\."outbox" \(message_id, exchange/);
    expect(batchSql('x')).toBe(
      'SELECT id, message_id, exchange, routing_key, body, headers, published_at FROM "x" ORDER BY id LIMIT $1',
    );
    expect(deleteSql('x')).toBe('DELETE FROM "x" WHERE id = ANY($1::bigint[])');
    expect(notifyChannel('events.outbox')).toBe('events.outbox');
  });

  it('makes a migration with the table, its NOTIFY trigger beside it and the layout comment', () => {
    const sql = outboxMigrationSql('events.outbox');
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "events"."outbox"');
    expect(sql).toContain(`COMMENT ON TABLE "events"."outbox" IS 'nestjs-mo-amqp outbox v1'`);
    expect(sql).toContain('CREATE OR REPLACE FUNCTION "events"."outbox_notify"()');
    expect(sql).toContain(`PERFORM pg_notify('events.outbox', '')`);
    expect(sql).toContain('CREATE TRIGGER "outbox_notify" AFTER INSERT ON "events"."outbox" FOR EACH STATEMENT');
    expect(outboxMigrationSql()).toContain('"mo_amqp_outbox"');
  });

  it.each(["outbox'; DROP TABLE x; --", 'Outbox', 'a.b.c', '', 'x'.repeat(64)])(
    'refuses to make a migration for the table name %j, naming what is allowed',
    (table) => {
      expect(() => outboxMigrationSql(table)).toThrow(MoAmqpConfigError);
      expect(() => outboxMigrationSql(table)).toThrow(/a lower-case SQL name/);
    },
  );
});

describe('the transaction objects the outbox writes through', () => {
  const statement = 'INSERT INTO "t" (a, b) VALUES ($1, $2)';

  it('passes $n parameters to TypeORM and node-postgres query(sql, params)', async () => {
    const calls: unknown[][] = [];
    const entityManager = { query: async (...args: unknown[]) => calls.push(args) };
    await sqlRunnerFor(entityManager)(statement, ['x', 1]);
    expect(calls).toEqual([[statement, ['x', 1]]]);
  });

  it('turns $n into ? for Knex raw(sql, bindings)', async () => {
    const calls: unknown[][] = [];
    const trx = Object.assign(() => undefined, {
      raw: async (...args: unknown[]) => calls.push(args),
      commit: () => undefined,
      client: {},
    });
    await sqlRunnerFor(trx)(statement, ['x', 1]);
    expect(calls).toEqual([['INSERT INTO "t" (a, b) VALUES (?, ?)', ['x', 1]]]);
  });

  it('spreads the parameters for Prisma $executeRawUnsafe, and hands them to pg-promise none()', async () => {
    const prisma: unknown[][] = [];
    await sqlRunnerFor({ $executeRawUnsafe: async (...args: unknown[]) => prisma.push(args) })(statement, ['x', 1]);
    expect(prisma).toEqual([[statement, 'x', 1]]);
    const pgp: unknown[][] = [];
    const task = { none: async (...args: unknown[]) => pgp.push(args), oneOrNone: async () => null };
    await sqlRunnerFor(task)(statement, ['x', 1]);
    expect(pgp).toEqual([[statement, ['x', 1]]]);
  });

  it('builds a Drizzle SQL object with the values as parameters, not text', async () => {
    let executed: { queryChunks: unknown[] } | undefined;
    const tx = { dialect: {}, session: {}, execute: async (query: { queryChunks: unknown[] }) => (executed = query) };
    await sqlRunnerFor(tx)(statement, ["it's", 1]);
    const chunks = JSON.stringify(executed?.queryChunks);
    expect(chunks).toContain('INSERT INTO \\"t\\" (a, b) VALUES (');
    expect(executed?.queryChunks).toContain("it's");
    expect(executed?.queryChunks).toContain(1);
  });

  it('names what it cannot write through', () => {
    class MongoSession {}
    expect(() => sqlRunnerFor(new MongoSession())).toThrow(
      /cannot write through the transaction of @nestjs-cls\/transactional \(MongoSession\)/,
    );
    expect(() => sqlRunnerFor(undefined)).toThrow(/\(undefined\)/);
  });
});
