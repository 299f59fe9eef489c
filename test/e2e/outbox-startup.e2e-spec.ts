import { Transactional } from '@nestjs-cls/transactional';
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { Socket, connect, createServer } from 'node:net';
import { MoAmqpConfigError, MoAmqpModuleOptions, MoEventsService } from '../../lib';
import { MoOutboxRelay } from '../../lib/outbox/outbox-relay';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';
import { PG_URL, outboxTable, sql, typeOrmTransactions, uniqueTable } from '../support/postgres';

const PERSON = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

@Injectable()
class Producer {
  constructor(private readonly events: MoEventsService) {}

  @Transactional()
  async produce(uuid: string) {
    return this.events.publish('employee', 'engagement', 'create', uuid);
  }
}

/** The test database's URL with another password, role or database. */
function outboxUrlWith(change: { password?: string; user?: string; database?: string }): string {
  const url = new URL(PG_URL);
  if (change.password !== undefined) url.password = change.password;
  if (change.user !== undefined) url.username = change.user;
  if (change.database !== undefined) url.pathname = `/${change.database}`;
  return url.toString();
}

/** A loopback port nothing listens on: taken, then freed. */
function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A password no error text contains by chance (letters rare in English and in our messages). */
const secret = () => `Qz${randomBytes(9).toString('hex')}Xj`;

describe('outbox start-up: a bad PostgreSQL setting stops it at once, an outage does not', () => {
  let broker: TestBroker;
  let table: { name: string; drop(): Promise<void> };
  const apps: TestingModule[] = [];

  beforeEach(async () => {
    broker = await TestBroker.connect();
    table = await outboxTable('startup');
  });

  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    await broker.close();
    await table.drop();
  });

  async function boot(options: MoAmqpModuleOptions, logger = new CapturingLogger()) {
    const app = await bootApp(
      {
        enabled: true,
        url: BROKER_URL,
        exchange: uniqueName('outbox-startup'),
        outbox: 'postgres',
        outboxUrl: PG_URL,
        outboxTable: table.name,
        ...options,
      },
      { imports: typeOrmTransactions(), providers: [Producer], logger },
    );
    apps.push(app);
    return app;
  }

  /** Boots, expecting a refusal: the error, how long it took, and what was logged. */
  async function refused(options: MoAmqpModuleOptions) {
    const logger = new CapturingLogger();
    const started = Date.now();
    const failure = await boot(options, logger).then(
      () => undefined,
      (err: unknown) => err,
    );
    return { failure: failure as Error, ms: Date.now() - started, logged: logger.text };
  }

  type Change = { password?: string; user?: string; database?: string };
  it.each<[string, Change, string[]]>([
    ['a wrong password', { password: 'PASSWORD' }, ['the password is wrong', `ALTER ROLE "mo_amqp" PASSWORD`]],
    ['an unknown role', { user: 'mo_amqp_nobody', password: 'PASSWORD' }, ['role "mo_amqp_nobody"']],
    ['an unknown database', { database: 'mo_amqp_nowhere' }, ['CREATE DATABASE "mo_amqp_nowhere" OWNER "mo_amqp"']],
  ])(
    '%s in AMQP__OUTBOX_URL ends start-up within 2 s, naming it, the host, database and role',
    async (_, change, fix) => {
      const password = secret();
      const url = outboxUrlWith({ ...change, password: change.password === undefined ? undefined : password });
      const { failure, ms, logged } = await refused({ outboxUrl: url });
      expect(failure).toBeInstanceOf(MoAmqpConfigError);
      expect(failure.message).toContain('AMQP__OUTBOX_URL (outboxUrl)');
      expect(failure.message).toContain('PostgreSQL at 127.0.0.1:5432');
      expect(failure.message).toContain(`database "${change.database ?? 'mo_amqp_test'}"`);
      expect(failure.message).toContain(`role "${change.user ?? 'mo_amqp'}"`);
      for (const words of fix) expect(failure.message).toContain(words);
      expect(ms).toBeLessThan(2_000);
      for (const text of [failure.message, failure.stack ?? '', logged]) {
        expect(text).not.toContain(password);
        expect(text).not.toContain(password.slice(2, 8));
        expect(text).not.toContain(':mo_amqp@');
      }
    },
  );

  it('a password given as ?password= is masked as well', async () => {
    const password = secret();
    const url = new URL(PG_URL);
    url.password = '';
    url.searchParams.set('password', password);
    const { failure, logged } = await refused({ outboxUrl: url.toString() });
    expect(failure).toBeInstanceOf(MoAmqpConfigError);
    expect(failure.message).toContain('password=***');
    expect(failure.message + logged).not.toContain(password);
  });

  it('a role without DELETE on the table, in a relaying process, ends start-up naming the GRANT', async () => {
    await sql(`REVOKE DELETE ON "${table.name}" FROM mo_amqp`);
    const { failure, ms } = await refused({});
    expect(failure).toBeInstanceOf(MoAmqpConfigError);
    expect(failure.message).toContain('AMQP__OUTBOX_TABLE (outboxTable)');
    expect(failure.message).toContain('role "mo_amqp" lacks DELETE');
    expect(failure.message).toContain(`GRANT SELECT, INSERT, DELETE ON "${table.name}" TO "mo_amqp"`);
    expect(ms).toBeLessThan(2_000);
    // Not relaying here: DELETE is not this process's business.
    await expect(boot({ outboxRelay: false })).resolves.toBeDefined();
  });

  it('a relaying role without INSERT starts with a warning: the transactions may log in as another role', async () => {
    await sql(`REVOKE INSERT ON "${table.name}" FROM mo_amqp`);
    const logger = new CapturingLogger();
    await boot({}, logger);
    expect(logger.text).toContain('AMQP__OUTBOX_URL: role "mo_amqp" lacks INSERT on it');
    expect(logger.text).toContain('if they log in as another role, that one needs INSERT');
  });

  it('DELETE revoked while relaying: an ERROR naming the GRANT, and the rows are not sent again and again', async () => {
    const exchange = uniqueName('outbox-revoked');
    const collector = await broker.collect(exchange, 'employee.#');
    const logger = new CapturingLogger();
    const app = await boot({ exchange }, logger);
    await sql(`REVOKE DELETE ON "${table.name}" FROM mo_amqp`);
    for (let i = 0; i < 20; i++) await app.get(Producer).produce(PERSON);
    await until(() => logger.text.includes('lacks DELETE on it'), 'the relay to name the missing right', 15_000);
    // (The test role's password is its name, so the log masks the name too.)
    expect(logger.text).toContain(`GRANT SELECT, INSERT, DELETE ON "${table.name}" TO`);
    const sent = collector.messages.length;
    // Longer than the relay's longest back-off (5 s): each pass would send the 20 rows again.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(sent).toBeLessThanOrEqual(20);
    expect(collector.messages.length).toBe(sent);
    // Granted again: sent (once more) and deleted, without a restart.
    await sql(`GRANT DELETE ON "${table.name}" TO mo_amqp`);
    await until(async () => (await sql(`SELECT id FROM "${table.name}"`)).length === 0, 'the table to empty', 15_000);
    expect(collector.messages.length).toBeLessThanOrEqual(sent + 20);
  }, 40_000);

  it('a role without INSERT ends start-up, since transactions write through it', async () => {
    await sql(`REVOKE INSERT ON "${table.name}" FROM mo_amqp`);
    const { failure } = await refused({ outboxRelay: false });
    expect(failure).toBeInstanceOf(MoAmqpConfigError);
    expect(failure.message).toContain('role "mo_amqp" lacks INSERT');
    expect(failure.message).toContain(`GRANT SELECT, INSERT ON "${table.name}" TO "mo_amqp"`);
  });

  it('a role that may not read the table, or a missing table, ends start-up naming the fix', async () => {
    await sql(`REVOKE SELECT ON "${table.name}" FROM mo_amqp`);
    const unreadable = await refused({});
    expect(unreadable.failure.message).toContain(`GRANT SELECT, INSERT, DELETE ON "${table.name}" TO "mo_amqp"`);
    const missing = uniqueTable('missing');
    const absent = await refused({ outboxTable: missing });
    expect(absent.failure.message).toContain(`'${missing}'`);
    expect(absent.failure.message).toContain('it does not exist');
    expect(absent.failure.message).toContain('database "mo_amqp_test" at 127.0.0.1:5432 (role "mo_amqp")');
    expect(absent.ms).toBeLessThan(2_000);
  });

  it('PostgreSQL down at start-up (nothing listens): the app starts, says which, health says unreachable', async () => {
    const port = await freePort();
    const logger = new CapturingLogger();
    const app = await boot({ outboxUrl: `postgres://mo_amqp:${secret()}@127.0.0.1:${port}/mo_amqp_test` }, logger);
    expect(logger.text).toContain(
      `PostgreSQL at postgres://mo_amqp:***@127.0.0.1:${port}/mo_amqp_test (AMQP__OUTBOX_URL) is not reachable at start-up`,
    );
    expect(logger.text).toContain('the relay waits for it and checks the outbox table then');
    expect(app.get(MoOutboxRelay).status).toMatchObject({ databaseReachable: false });
  });

  it('PostgreSQL down at start-up and back later: the relay checks the table then and sends what committed', async () => {
    const port = await freePort();
    const exchange = uniqueName('outbox-late-pg');
    const collector = await broker.collect(exchange, 'employee.#');
    // The app's own transactions (TypeORM) reach PostgreSQL; the outbox URL names a port that comes later.
    const app = await boot({ exchange, outboxUrl: `postgres://mo_amqp:mo_amqp@127.0.0.1:${port}/mo_amqp_test` });
    const written = await app.get(Producer).produce(PERSON);
    expect(written.status).toBe('outboxed');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(collector.messages).toHaveLength(0);
    const sockets = new Set<Socket>();
    const proxy = createServer((socket) => {
      const server = connect(5432, '127.0.0.1');
      for (const s of [socket, server]) {
        sockets.add(s);
        s.on('error', () => undefined);
      }
      socket.pipe(server).pipe(socket);
    }).listen(port, '127.0.0.1');
    try {
      const [message] = await collector.waitFor(1, 15_000);
      expect(message.properties.messageId).toBe(written.messageId);
      // Said once the pass that sent it has ended.
      await until(
        () => app.get(MoOutboxRelay).status?.databaseReachable === true,
        'the relay to say it reached the database',
      );
      expect(app.get(MoOutboxRelay).status?.lastError).toBeUndefined();
    } finally {
      await app.close();
      apps.splice(apps.indexOf(app), 1);
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('ENABLE_AMQP=false with the outbox: rows are written in the transaction, for a relay elsewhere', async () => {
    const logger = new CapturingLogger();
    const app = await boot({ enabled: false }, logger);
    expect(logger.text).toContain(`events produced in transactions are written to ${table.name}`);
    const result = await app.get(Producer).produce(PERSON);
    expect(result.status).toBe('outboxed');
    const rows = await sql<{ message_id: string; routing_key: string }>(
      `SELECT message_id, routing_key FROM "${table.name}"`,
    );
    expect(rows).toEqual([{ message_id: result.messageId, routing_key: 'employee.engagement.create' }]);
    expect(app.get(MoEventsService).counters).toMatchObject({ outboxed: 1, disabled: 0 });
    // Outside a transaction there is no durable path here: that event is not sent (as without the outbox).
    await expect(app.get(MoEventsService).publish('employee', 'engagement', 'update', PERSON)).resolves.toMatchObject({
      status: 'disabled',
    });
  });
});
