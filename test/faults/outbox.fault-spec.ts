import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { RELAY_WINDOW } from '../../lib/outbox/relay-window';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { PG_URL, outboxTable, sql, uniqueTable } from '../support/postgres';
import { until } from '../support/until';
import { Fixture, drainQueue, faultCounts, report, startBroker, stopBroker, uuid } from './support';

// Issue 15, point 4: the PostgreSQL outbox under faults. Each case runs the app as child
// processes (test/fixtures/fault-outbox-app.js: TypeORM, @nestjs-cls/transactional and
// `@Transactional() @MoEvent(...)`, on the built package), on an outbox table, a business
// table, an exchange and a durable queue of its own. What was committed is read back from
// the business table: every event of a committed change must arrive (`lost`), and none of
// a change that did not commit (`phantom`). `sent`: changes committed; `outboxed`: commits
// the apps saw succeed; `confirmed`: rows the relays sent with a broker confirm, as the apps
// count them (a killed app's from its last progress line, so a lower bound).

const APP = 'fault-outbox-app.js';
const run = promisify(execFile);

async function restartPostgres(): Promise<void> {
  await run('bash', [join(__dirname, '..', '..', 'scripts', 'postgresql.sh'), 'restart'], { timeout: 180_000 });
}

async function startPostgres(): Promise<void> {
  await run('bash', [join(__dirname, '..', '..', 'scripts', 'postgresql.sh'), 'start'], { timeout: 180_000 });
}

interface Done {
  committed: number;
  refused: number;
  refusedIds: string[];
}

const json = <T>(line: string): T => JSON.parse(line.slice(line.indexOf(' ') + 1)) as T;

describe('the PostgreSQL outbox under faults', () => {
  let broker: TestBroker;
  let exchange: string;
  let queue: string;
  let outbox: { name: string; drop(): Promise<void> };
  let engagements: string;
  let apps: Fixture[];

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('outbox-fault');
    queue = `${exchange}.sink`;
    broker.track(exchange);
    broker.trackQueue(queue);
    // The reader's queue, bound before anything is committed: it keeps what arrives while nobody reads.
    await broker.channel.assertExchange(exchange, 'topic', { durable: true });
    await broker.channel.assertQueue(queue, { durable: true });
    await broker.channel.bindQueue(queue, exchange, '#');
    outbox = await outboxTable('fault_outbox');
    engagements = uniqueTable('fault_engagement');
    await sql(`CREATE TABLE "${engagements}" (uuid uuid PRIMARY KEY, title text NOT NULL)`);
    apps = [];
  });

  afterEach(async () => {
    for (const app of apps) await app.stop('SIGKILL');
    await startPostgres(); // a case that failed mid-restart leaves it down
    await outbox.drop();
    await sql(`DROP TABLE IF EXISTS "${engagements}"`);
    broker = await TestBroker.reconnect(broker);
    await broker.close();
  });

  /** An app process on this case's tables and exchange, booted ("ready"). */
  async function startApp(relay: boolean): Promise<Fixture> {
    const app = Fixture.start(APP, {
      ENABLE_AMQP: 'true',
      AMQP__URL: BROKER_URL,
      AMQP__EXCHANGE: exchange,
      AMQP__SPOOL_DIR: 'off',
      AMQP__OUTBOX: 'postgres',
      AMQP__OUTBOX_URL: PG_URL,
      AMQP__OUTBOX_TABLE: outbox.name,
      AMQP__OUTBOX_RELAY: String(relay),
      ENGAGEMENT_TABLE: engagements,
    });
    apps.push(app);
    await app.line('ready', 60_000);
    return app;
  }

  /** Sends `commit N FROM CONCURRENCY RATE` and waits for its "done". */
  async function commit(app: Fixture, count: number, from: number, concurrency = 20, rate = 0): Promise<Done> {
    app.send(`commit ${count} ${from} ${concurrency} ${rate}`);
    return json<Done>(await app.line('done', 120_000));
  }

  /** The relay's confirmed sends, as the app counts them. */
  async function relayed(app: Fixture): Promise<number> {
    app.send('counters');
    return json<{ relayed: number }>(await app.line('counters')).relayed;
  }

  /** The uuids of the changes that committed: the truth the events are held against. */
  async function committed(): Promise<Set<string>> {
    return new Set((await sql<{ uuid: string }>(`SELECT uuid FROM "${engagements}"`)).map((r) => r.uuid));
  }

  async function outboxRows(): Promise<number> {
    return Number((await sql<{ n: string }>(`SELECT count(*) AS n FROM "${outbox.name}"`))[0].n);
  }

  /**
   * Reads the queue until every committed change's event arrived (or `timeoutMs`), then
   * a little longer: a late duplicate, or an event that should never come, would come now.
   */
  async function read(truth: Set<string>, timeoutMs: number) {
    const seen = await drainQueue([BROKER_URL], queue, truth.size, timeoutMs);
    const late = await drainQueue([BROKER_URL], queue, 1, 3_000);
    for (const [id, n] of late.copies) seen.copies.set(id, (seen.copies.get(id) ?? 0) + n);
    const total = seen.total + late.total;
    const lost = [...truth].filter((id) => !seen.copies.has(id));
    const phantom = [...seen.copies.keys()].filter((id) => !truth.has(id));
    const delivered = truth.size - lost.length;
    const duplicates = total - seen.copies.size;
    return { lost, phantom, delivered, duplicates, seen: { distinct: delivered, total: delivered + duplicates } };
  }

  /** Runs `fn` with the broker stopped, and starts it again whatever happens. */
  async function whileBrokerDown<T>(fn: () => Promise<T>): Promise<T> {
    await stopBroker();
    try {
      return await fn();
    } finally {
      await startBroker();
    }
  }

  /** After an outage: every committed change's event arrives, none of another, and the table empties. */
  async function expectAllRelayed(app: Fixture, done: Done, name: string): Promise<void> {
    broker = await TestBroker.reconnect(broker);
    const truth = await committed();
    const { lost, phantom, seen } = await read(truth, 120_000);
    await until(async () => (await outboxRows()) === 0, 'the outbox table to empty', 20_000);
    const counts = faultCounts(truth.size, { confirmed: await relayed(app) }, seen);
    report(name, { ...counts, outboxed: done.committed, refused: done.refused, phantom: phantom.length });
    expect({ lost: lost.slice(0, 5), phantom: phantom.slice(0, 5) }).toEqual({ lost: [], phantom: [] });
    expect(counts.lost).toBe(0);
  }

  it('the app killed (SIGKILL) right after its commits, before publishing: the events arrive after a restart', async () => {
    // The relay off: the commits land in the table and nothing is sent, as when a
    // process dies between its commit and its publish.
    const first = await startApp(false);
    const done = await commit(first, 2_000, 0);
    await first.stop('SIGKILL');
    expect(done).toMatchObject({ committed: 2_000, refused: 0 });
    expect(await outboxRows()).toBe(2_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // longer than a relay's poll
    const before = (await broker.channel.checkQueue(queue)).messageCount;
    expect(before).toBe(0);

    const second = await startApp(true);
    const truth = await committed();
    const { lost, phantom, delivered, duplicates, seen } = await read(truth, 60_000);
    await until(async () => (await outboxRows()) === 0, 'the outbox table to empty', 10_000);
    const counts = faultCounts(truth.size, { confirmed: await relayed(second) }, seen);
    report('outbox: app killed after commit, before publishing', {
      ...counts,
      outboxed: done.committed,
      phantom: phantom.length,
    });
    expect({ delivered, duplicates, before }).toEqual({ delivered: 2_000, duplicates: 0, before: 0 });
    expect({ lost: lost.slice(0, 5), phantom: phantom.slice(0, 5) }).toEqual({ lost: [], phantom: [] });
    expect(counts.lost).toBe(0);
  });

  it('rolled-back transactions: their events never arrive, the committed ones after them do', async () => {
    const app = await startApp(true);
    app.send('rollback 500 0');
    const rolled = json<{ rolledBack: number; committed: number }>(await app.line('done'));
    expect(rolled).toEqual({ rolledBack: 500, committed: 0 });
    const done = await commit(app, 500, 500);
    const truth = await committed();
    expect(truth.size).toBe(500);
    const { lost, phantom, seen } = await read(truth, 60_000);
    await until(async () => (await outboxRows()) === 0, 'the outbox table to empty', 10_000);
    const counts = faultCounts(truth.size, { confirmed: await relayed(app) }, seen);
    report('outbox: rolled-back transactions', {
      ...counts,
      outboxed: done.committed,
      rolledBack: rolled.rolledBack,
      phantom: phantom.length,
    });
    const rolledBack = Array.from({ length: 500 }, (_, i) => uuid(i));
    expect(rolledBack.filter((id) => truth.has(id))).toEqual([]);
    expect({ lost: lost.slice(0, 5), phantom: phantom.slice(0, 5) }).toEqual({ lost: [], phantom: [] });
    expect(counts.lost).toBe(0);
  });

  it('the broker down for a burst of 5,000 committed changes: all arrive once it is back', async () => {
    const app = await startApp(true);
    // The point of the outbox: the changes commit although no event can be sent.
    const { done, rowsWhileDown } = await whileBrokerDown(async () => ({
      done: await commit(app, 5_000, 0),
      rowsWhileDown: await outboxRows(),
    }));
    expect(done).toMatchObject({ committed: 5_000, refused: 0 });
    expect(rowsWhileDown).toBe(5_000);
    await expectAllRelayed(app, done, 'outbox: broker down for a burst of 5,000 commits');
  }, 300_000);

  it('an app started while the broker is down: it boots, commits, and its rows are relayed once the broker is back', async () => {
    const { app, bootMs, done, rowsWhileDown } = await whileBrokerDown(async () => {
      // The outbox holds the events, so start-up does not wait for the broker (AMQP__START_WITHOUT_BROKER=auto).
      const started = Date.now();
      const app = await startApp(true);
      const bootMs = Date.now() - started;
      return { app, bootMs, done: await commit(app, 1_000, 0), rowsWhileDown: await outboxRows() };
    });
    expect(done).toMatchObject({ committed: 1_000, refused: 0 });
    expect(rowsWhileDown).toBe(1_000);
    // Well inside the connect timeout (10 s) it once waited out before failing.
    expect(bootMs).toBeLessThan(10_000);
    await expectAllRelayed(app, done, 'outbox: app started with the broker down');
  }, 300_000);

  it('two replicas relaying one table, one killed (SIGKILL) mid-burst: the survivor sends the rest', async () => {
    const replicas = await Promise.all([startApp(true), startApp(true)]);
    // Each one's last "progress <committed> <refused> <relayed>", read beside Fixture.line.
    const progress = replicas.map((app) => {
      const last = { committed: 0, relayed: 0 };
      createInterface({ input: app.child.stdout! }).on('line', (line) => {
        const [word, c, , r] = line.split(' ');
        if (word === 'progress') Object.assign(last, { committed: Number(c), relayed: Number(r) });
      });
      return last;
    });
    replicas[0].send('commit 3000 0 10 1000');
    replicas[1].send('commit 3000 3000 10 1000');
    // A third of the way, kill the one whose relay has sent more (the one publishing, as
    // far as can be told), with its commits and maybe a relay batch in flight.
    await until(() => progress.every((p) => p.committed >= 1_000), 'a third of the burst', 60_000);
    const victim = progress[1].relayed > progress[0].relayed ? 1 : 0;
    const [dead, survivor] = [replicas[victim], replicas[1 - victim]];
    await dead.stop('SIGKILL');
    const { committed: deadCommitted, relayed: deadRelayed } = progress[victim];
    const done = json<Done>(await survivor.line('done', 120_000));
    const truth = await committed();
    const { lost, phantom, seen } = await read(truth, 120_000);
    await until(async () => (await outboxRows()) === 0, 'the outbox table to empty', 20_000);
    const survivorRelayed = await relayed(survivor);
    const counts = faultCounts(truth.size, { confirmed: deadRelayed + survivorRelayed }, seen);
    report('outbox: two relays on one table, one killed mid-burst', {
      ...counts,
      outboxed: deadCommitted + done.committed,
      phantom: phantom.length,
    });
    expect(done).toMatchObject({ committed: 3_000, refused: 0 });
    expect(truth.size).toBeGreaterThanOrEqual(3_000 + deadCommitted);
    expect(survivorRelayed).toBeGreaterThan(0);
    expect({ lost: lost.slice(0, 5), phantom: phantom.slice(0, 5) }).toEqual({ lost: [], phantom: [] });
    expect(counts.lost).toBe(0);
  });

  it('a relay SIGKILLed mid-way through a backlog of 20,000 rows: the next one resends at most the relay window (150)', async () => {
    const first = await startApp(true);
    // One commit of 20,000 changes with their rows: the relay wakes and sends them back to back,
    // so wherever the kill lands, it lands inside a batch.
    const count = 20_000;
    const id = `('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid`;
    await sql(
      `WITH changes AS (INSERT INTO "${engagements}" (uuid, title) SELECT ${id}, 'backlog' FROM generate_series(1, $2::int) AS i)
       INSERT INTO "${outbox.name}" (message_id, exchange, routing_key, body, published_at)
       SELECT gen_random_uuid(), $1, 'employee.engagement.create',
              '{"uuid":"' || ${id} || '","time":"2026-12-07T00:00:00+00:00"}', 1796601600
       FROM generate_series(1, $2::int) AS i`,
      [exchange, count],
    );
    let queued = 0;
    await until(
      async () => (queued = (await broker.channel.checkQueue(queue)).messageCount) >= 4_000,
      'a fifth of the backlog to arrive',
      30_000,
    );
    await first.stop('SIGKILL');
    const left = await outboxRows();
    const second = await startApp(true);
    const truth = await committed();
    const { lost, phantom, duplicates, seen } = await read(truth, 120_000);
    await until(async () => (await outboxRows()) === 0, 'the outbox table to empty', 20_000);
    const counts = faultCounts(truth.size, { confirmed: await relayed(second) }, seen);
    report('outbox: a relay killed mid-batch over a backlog of 20,000', {
      ...counts,
      outboxed: count,
      phantom: phantom.length,
    });
    console.log(
      `outbox relay kill: ${queued} queued at the kill, ${left} rows left, ${duplicates} sent twice (bound ${RELAY_WINDOW})`,
    );
    expect(left).toBeLessThan(count);
    expect({ lost: lost.slice(0, 5), phantom: phantom.slice(0, 5) }).toEqual({ lost: [], phantom: [] });
    expect(counts.lost).toBe(0);
    expect(duplicates).toBeLessThanOrEqual(RELAY_WINDOW);
  }, 240_000);

  it('PostgreSQL restarted mid-burst: what committed arrives, what failed never does, the app lives on', async () => {
    const app = await startApp(true);
    app.send('commit 4000 0 10 500'); // some 8 s
    let progress = 0;
    while (progress < 1_000) progress = Number((await app.line('progress')).split(' ')[1]);
    await restartPostgres();
    const done = json<Done>(await app.line('done', 120_000));
    // After the outage: the app (its pool and its relay) works again, without a restart.
    const after = await commit(app, 200, 4_000);
    expect(after).toMatchObject({ committed: 200, refused: 0 });
    const truth = await committed();
    const { lost, phantom, seen } = await read(truth, 120_000);
    await until(async () => (await outboxRows()) === 0, 'the outbox table to empty', 20_000);
    const counts = faultCounts(truth.size, { confirmed: await relayed(app) }, seen);
    // A change reported failed whose commit went through all the same (the answer lost
    // with the connection) is in the table, and its event rightly arrives.
    const refusedButCommitted = done.refusedIds.filter((id) => truth.has(id));
    report('outbox: PostgreSQL restarted mid-burst', {
      ...counts,
      outboxed: done.committed + after.committed,
      refused: done.refused,
      phantom: phantom.length,
    });
    expect(app.child.exitCode).toBeNull();
    expect(done.committed + done.refused).toBe(4_000);
    expect(truth.size).toBe(done.committed + after.committed + refusedButCommitted.length);
    expect({ lost: lost.slice(0, 5), phantom: phantom.slice(0, 5) }).toEqual({ lost: [], phantom: [] });
    expect(counts.lost).toBe(0);
  }, 240_000);
});
