import { TestingModule } from '@nestjs/testing';
import { MoEventsService } from '../../lib';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { PG_URL, outboxTable, sql, typeOrmTransactions } from '../support/postgres';
import { until } from '../support/until';

const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** Committed rows as another process (or a crashed one) left them: message_id i's uuid, body naming i. */
async function commitRows(table: string, exchange: string, from: number, count: number): Promise<void> {
  await sql(
    `INSERT INTO "${table}" (message_id, exchange, routing_key, body, published_at)
     SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, $1, 'employee.engagement.create',
            '{"uuid":"' || ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0')) || '","time":"2026-11-30T00:00:00+00:00"}',
            1764460800
     FROM generate_series($2::int, $3::int) AS i`,
    [exchange, from, from + count - 1],
  );
}

describe('the outbox relay', () => {
  let broker: TestBroker;
  const apps: TestingModule[] = [];
  let table: { name: string; drop(): Promise<void> };

  beforeEach(async () => {
    broker = await TestBroker.connect();
    table = await outboxTable('relay');
  });

  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    await broker.close();
    await table.drop();
  });

  async function boot(exchange: string, outboxRelay = true): Promise<MoEventsService> {
    const app = await bootApp(
      {
        enabled: true,
        url: BROKER_URL,
        exchange,
        outbox: 'postgres',
        outboxUrl: PG_URL,
        outboxTable: table.name,
        outboxRelay,
      },
      { imports: typeOrmTransactions(), logger: new CapturingLogger() },
    );
    apps.push(app);
    return app.get(MoEventsService);
  }

  it('sends what was committed before it started, oldest first, and empties the table', async () => {
    const exchange = uniqueName('relay-backlog');
    const collector = await broker.collect(exchange, 'employee.#');
    await commitRows(table.name, exchange, 1, 1200);

    const events = await boot(exchange);
    const messages = await collector.waitFor(1200, 20_000);
    expect(messages.map((m) => m.properties.messageId)).toEqual(Array.from({ length: 1200 }, (_, i) => uuid(i + 1)));
    expect(messages[0].properties).toMatchObject({
      deliveryMode: 2,
      contentType: 'application/json',
      timestamp: 1764460800,
    });
    await until(async () => (await sql(`SELECT id FROM "${table.name}"`)).length === 0, 'the table to empty');
    expect(events.counters.relayed).toBe(1200);
  });

  it('with two relays on one table, sends each row once, in order, while both live', async () => {
    const exchange = uniqueName('relay-two');
    const collector = await broker.collect(exchange, 'employee.#');
    const [a, b] = [await boot(exchange), await boot(exchange)];

    for (let batch = 0; batch < 10; batch++) await commitRows(table.name, exchange, batch * 100 + 1, 100);
    const messages = await collector.waitFor(1000, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(collector.messages).toHaveLength(1000);
    expect(messages.map((m) => m.properties.messageId)).toEqual(Array.from({ length: 1000 }, (_, i) => uuid(i + 1)));
    await until(() => a.counters.relayed + b.counters.relayed === 1000, 'the relays to count 1000');
  });

  it('wakes on the commit: a row written while it waits is sent in milliseconds, not at the next poll', async () => {
    const exchange = uniqueName('relay-notify');
    const collector = await broker.collect(exchange, 'employee.#');
    await boot(exchange);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the relay is waiting now

    const latencies: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const started = Date.now();
      await commitRows(table.name, exchange, i, 1);
      await collector.waitFor(i);
      latencies.push(Date.now() - started);
    }
    // The poll is 1,000 ms; a notified relay answers far below it even on a loaded machine.
    expect(Math.max(...latencies)).toBeLessThan(500);
  });

  it('with the relay off, leaves the rows for another process', async () => {
    const exchange = uniqueName('relay-off');
    const collector = await broker.collect(exchange, 'employee.#');
    await commitRows(table.name, exchange, 1, 10);
    await boot(exchange, false);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(collector.messages).toHaveLength(0);
    expect(await sql(`SELECT id FROM "${table.name}"`)).toHaveLength(10);
  });
});
