import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { closedPort } from '../support/broker';
import { PG_URL, sql, uniqueTable } from '../support/postgres';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const run = promisify(execFile);

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'outbox', ...args], {
      env: { ...process.env, ...env },
      timeout: 20_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('mo-amqp outbox', () => {
  const table = uniqueTable('cli');
  const env = { AMQP__OUTBOX_URL: PG_URL, AMQP__OUTBOX_TABLE: table };

  afterAll(async () => {
    await sql(`DROP TABLE IF EXISTS "${table}"`);
    await sql(`DROP FUNCTION IF EXISTS "${table}_notify"()`);
  });

  it('migrates (twice, as a second replica would), then reports what waits', async () => {
    const first = await cli(['migrate'], env);
    expect(first).toMatchObject({ code: 0 });
    expect(first.stdout).toContain(`table ${table} is ready at PostgreSQL at postgres://mo_amqp:***@127.0.0.1`);
    expect((await cli(['migrate'], env)).code).toBe(0);
    expect((await cli(['status'], env)).stdout).toContain(`${table}: 0 row(s) wait to be relayed`);

    await sql(
      `INSERT INTO "${table}" (message_id, exchange, routing_key, body, published_at) VALUES (gen_random_uuid(), 'os2mo', 'employee.engagement.create', '{}', 0)`,
    );
    expect((await cli(['status'], env)).stdout).toMatch(
      new RegExp(`${table}: 1 row\\(s\\) wait to be relayed, the oldest written \\d+ s ago`),
    );
  });

  it('prints the migration SQL for a migration tool of your own, without a database', async () => {
    const printed = await cli(['sql'], { AMQP__OUTBOX_TABLE: 'events.outbox' });
    expect(printed.code).toBe(0);
    expect(printed.stdout).toContain('CREATE TABLE IF NOT EXISTS "events"."outbox"');
  });

  it('says what is wrong, with exit code 2, for a bad table, a missing URL or a bad action', async () => {
    const badTable = await cli(['migrate'], { ...env, AMQP__OUTBOX_TABLE: 'x; drop table y' });
    expect(badTable.code).toBe(2);
    expect(badTable.stderr).toContain('AMQP__OUTBOX_TABLE: received "x; drop table y"; allowed: a lower-case SQL name');
    const noUrl = await cli(['status'], { AMQP__OUTBOX_URL: '' });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain('AMQP__OUTBOX_URL');
    const badAction = await cli(['drop']);
    expect(badAction.code).toBe(2);
    expect(badAction.stderr).toContain('expected one of migrate, status, sql; got "drop"');
  });

  it('exits 1 naming the server, never its password, when PostgreSQL does not answer or refuses the login', async () => {
    const port = await closedPort();
    const down = await cli(['status'], { AMQP__OUTBOX_URL: `postgres://mo_amqp:S3cret-pw@127.0.0.1:${port}/mo` });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(
      `mo-amqp outbox status: PostgreSQL at postgres://mo_amqp:***@127.0.0.1:${port}/mo failed`,
    );
    const refused = await cli(['migrate'], {
      AMQP__OUTBOX_URL: PG_URL.replace('mo_amqp:mo_amqp@', 'mo_amqp:Wrong-S3cret@'),
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('AMQP__OUTBOX_URL (outboxUrl)');
    expect(refused.stderr).toContain('refused role "mo_amqp" on database "mo_amqp_test": the password is wrong');
    for (const output of [down, refused]) {
      expect(output.stdout + output.stderr).not.toMatch(/S3cret|3cre/);
    }
  });
});
