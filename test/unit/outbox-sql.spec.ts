import { MoAmqpConfigError, outboxMigrationSql } from '../../lib';
import { batchSql, deleteSql, insertSql, notifyChannel, quotedTable } from '../../lib/outbox/outbox-sql';
import { sqlRunnerFor } from '../../lib/outbox/sql-runners';
import { MoOutboxWriter } from '../../lib/outbox/transaction-writer';
import { resolveMoAmqpOptions } from '../../lib/config/mo-amqp-options.schema';

describe('outbox SQL', () => {
  it('quotes the table, schema and name apart', () => {
    expect(quotedTable('mo_amqp_outbox')).toBe('"mo_amqp_outbox"');
    expect(quotedTable('events.outbox')).toBe('"events"."outbox"');
    expect(insertSql('events.outbox')).toMatch(/^INSERT INTO "events"\."outbox" \(message_id, exchange/);
    expect(batchSql('x')).toBe(
      'SELECT id, message_id, exchange, routing_key, body, headers, published_at FROM "x" WHERE id > $1 ORDER BY id LIMIT $2',
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

describe('the outbox writer', () => {
  const options = resolveMoAmqpOptions({ enabled: true, outbox: 'postgres', outboxUrl: 'postgres://u:p@db/mo' });
  const entry = (i: number) => ({
    messageId: `id-${i}`,
    exchange: 'os2mo',
    routingKey: 'employee.engagement.create',
    body: `{"n":${i}}`,
    headers: undefined,
    timestamp: 1,
  });

  it('sends one statement at a time per transaction, rows in the order given, at most 1,000 per statement', async () => {
    const statements: { rows: number; ids: unknown[] }[] = [];
    let running = false;
    const tx = {
      query: async (text: string, params: unknown[]) => {
        if (running) throw new Error('a second query while one runs');
        running = true;
        await new Promise((resolve) => setTimeout(resolve, 5));
        statements.push({ rows: (text.match(/\(\$/g) ?? []).length, ids: params.filter((_, i) => i % 6 === 0) });
        running = false;
      },
    };
    const writer = new MoOutboxWriter(options, {} as never);
    Object.assign(writer, { host: { isTransactionActive: () => true, tx } });

    await Promise.all(Array.from({ length: 1_500 }, (_, i) => writer.write(entry(i))));
    await writer.write(entry(1_500));
    expect(statements.map((s) => s.rows)).toEqual([1_000, 500, 1]);
    expect(statements.flatMap((s) => s.ids)).toEqual(Array.from({ length: 1_501 }, (_, i) => `id-${i}`));
  });

  it('rejects every write of a statement that fails, and goes on with the next', async () => {
    let calls = 0;
    const tx = {
      query: async () => {
        if (calls++ === 0) throw new Error('check constraint');
      },
    };
    const writer = new MoOutboxWriter(options, {} as never);
    Object.assign(writer, { host: { isTransactionActive: () => true, tx } });
    const first = [writer.write(entry(1)), writer.write(entry(2))];
    await expect(Promise.all(first)).rejects.toThrow('check constraint');
    await expect(first[1]).rejects.toThrow('check constraint');
    await expect(writer.write(entry(3))).resolves.toBeUndefined();
  });
});
