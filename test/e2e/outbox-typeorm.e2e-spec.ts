import { Transactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import { Column, Entity, PrimaryColumn } from 'typeorm';
import { MoAmqpConfigError, MoEvent, MoEventsService, MoPublishError } from '../../lib';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { PG_URL, outboxTable, sql, typeOrmTransactions, uniqueTable } from '../support/postgres';
import { until } from '../support/until';

const ENGAGEMENTS = uniqueTable('engagement');
const PERSON = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const OTHER = '5fc4b8a0-6c5d-4f55-9d5e-4fd2a1d3a0b1';

@Entity({ name: ENGAGEMENTS })
class Engagement {
  @PrimaryColumn('uuid') uuid!: string;
  @Column('text') title!: string;
}

@Injectable()
class Engagements {
  constructor(
    private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>,
    private readonly events: MoEventsService,
  ) {}

  /** The rule: `@Transactional()` above `@MoEvent`, so the event is written before the commit. */
  @Transactional()
  @MoEvent('employee', 'engagement', 'create')
  async create(uuid: string, title: string): Promise<string> {
    await this.txHost.tx.getRepository(Engagement).insert({ uuid, title });
    return uuid;
  }

  /** The other order: the event is published after the commit, as without the outbox. */
  @MoEvent('employee', 'engagement', 'update')
  @Transactional()
  async rename(uuid: string, title: string): Promise<string> {
    await this.txHost.tx.getRepository(Engagement).update({ uuid }, { title });
    return uuid;
  }

  @Transactional()
  async createThenFail(uuid: string): Promise<void> {
    await this.create(uuid, 'doomed');
    throw new Error('business rule broken after the event');
  }

  /** Many events at once in one transaction: written in the order called. */
  @Transactional()
  async publishMany(uuids: string[]) {
    return Promise.all(uuids.map((uuid) => this.events.publish('employee', 'engagement', 'create', uuid)));
  }

  @Transactional()
  async publishInside(uuid: string) {
    await this.txHost.tx.getRepository(Engagement).insert({ uuid, title: 'by publish()' });
    return this.events.publish('employee', 'engagement', 'create', uuid);
  }
}

describe('the PostgreSQL outbox with TypeORM and @Transactional()', () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;
  let table: { name: string; drop(): Promise<void> };

  beforeEach(async () => {
    broker = await TestBroker.connect();
    table = await outboxTable();
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
    await table.drop();
    await sql(`DROP TABLE IF EXISTS "${ENGAGEMENTS}"`);
  });

  async function boot(exchange: string, extra: Record<string, unknown> = {}) {
    app = await bootApp(
      {
        enabled: true,
        url: BROKER_URL,
        exchange,
        outbox: 'postgres',
        outboxUrl: PG_URL,
        outboxTable: table.name,
        ...extra,
      },
      { imports: typeOrmTransactions([Engagement]), providers: [Engagements], logger: new CapturingLogger() },
    );
    return { engagements: app.get(Engagements), events: app.get(MoEventsService) };
  }

  it('commits the event with the change, and the relay publishes it with the message_id of the row', async () => {
    const exchange = uniqueName('outbox');
    const collector = await broker.collect(exchange, 'employee.#');
    const { engagements, events } = await boot(exchange);

    await engagements.create(PERSON, 'Teacher');
    const [message] = await collector.waitFor(1);
    expect(message.fields.routingKey).toBe('employee.engagement.create');
    expect(JSON.parse(message.content.toString()).uuid).toBe(PERSON);
    expect(message.properties.messageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(message.properties.deliveryMode).toBe(2);
    expect(await sql(`SELECT uuid FROM "${ENGAGEMENTS}"`)).toEqual([{ uuid: PERSON }]);
    await until(async () => (await sql(`SELECT id FROM "${table.name}"`)).length === 0, 'the row deleted', 5_000);
    expect(events.counters).toMatchObject({ outboxed: 1, relayed: 1, published: 0 });
  });

  it('publish() in a transaction reports outboxed, and the row carries the id it reported', async () => {
    const exchange = uniqueName('outbox-publish');
    const collector = await broker.collect(exchange, 'employee.#');
    const { engagements } = await boot(exchange, { outboxRelay: false });

    const result = await engagements.publishInside(PERSON);
    expect(result.status).toBe('outboxed');
    const rows = await sql<{ message_id: string; routing_key: string; body: string }>(
      `SELECT message_id, routing_key, body FROM "${table.name}"`,
    );
    expect(rows).toEqual([{ message_id: result.messageId, routing_key: result.routingKey, body: result.body }]);
    // With the relay off here, nothing is sent from this process.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(collector.messages).toHaveLength(0);
  });

  it('writes many events of one transaction in the order they were produced', async () => {
    const exchange = uniqueName('outbox-many');
    const { engagements } = await boot(exchange, { outboxRelay: false });
    const uuids = Array.from({ length: 1_500 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    const results = await engagements.publishMany(uuids);
    expect(results.every((r) => r.status === 'outboxed')).toBe(true);
    const rows = await sql<{ message_id: string }>(`SELECT message_id FROM "${table.name}" ORDER BY id`);
    expect(rows.map((r) => r.message_id)).toEqual(results.map((r) => r.messageId));
  });

  it('rolls the event back with the change: nothing reaches the broker', async () => {
    const exchange = uniqueName('outbox-rollback');
    const collector = await broker.collect(exchange, 'employee.#');
    const { engagements, events } = await boot(exchange);

    await expect(engagements.createThenFail(PERSON)).rejects.toThrow('business rule broken');
    await engagements.create(OTHER, 'after');
    const [only] = await collector.waitFor(1);
    // The later event arrives; the rolled-back one never does.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(collector.messages).toHaveLength(1);
    expect(JSON.parse(only.content.toString()).uuid).toBe(OTHER);
    expect(await sql(`SELECT uuid FROM "${ENGAGEMENTS}"`)).toEqual([{ uuid: OTHER }]);
    expect(events.counters.outboxed).toBe(2);
    await until(() => events.counters.relayed === 1, 'the relay to count its row');
  });

  it('with @MoEvent above @Transactional(), publishes directly after the commit, not through the table', async () => {
    const exchange = uniqueName('outbox-order');
    const collector = await broker.collect(exchange, 'employee.#');
    const { engagements, events } = await boot(exchange);

    await engagements.create(PERSON, 'Teacher');
    await engagements.rename(PERSON, 'Head teacher');
    const messages = await collector.waitFor(2);
    // Two paths, so no order between them: the direct one may overtake the relayed one (docs/outbox.md).
    expect(messages.map((m) => m.fields.routingKey).sort()).toEqual([
      'employee.engagement.create',
      'employee.engagement.update',
    ]);
    await until(() => events.counters.relayed === 1, 'the relay to count its row');
    expect(events.counters).toMatchObject({ outboxed: 1, confirmed: 1 });
  });

  it('fails the transaction when the row cannot be written, even with eventFailures log', async () => {
    const exchange = uniqueName('outbox-broken');
    const { engagements, events } = await boot(exchange, { eventFailures: 'log' });
    await sql(`ALTER TABLE "${table.name}" ADD CONSTRAINT no_rows CHECK (false) NOT VALID`);

    const failure = await engagements.create(PERSON, 'Teacher').catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(MoPublishError);
    expect((failure as MoPublishError).reason).toBe('outbox-failed');
    expect((failure as Error).message).toContain(`outbox table "${table.name}"`);
    expect((failure as Error).message).not.toContain('mo_amqp:mo_amqp');
    expect(await sql(`SELECT uuid FROM "${ENGAGEMENTS}"`)).toEqual([]);
    expect(events.counters.failed).toBe(1);
  });

  it('stops start-up when the table is missing, naming it and the command that creates it', async () => {
    const missing = uniqueTable('missing');
    const failure = await boot(uniqueName('outbox-missing'), { outboxTable: missing }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(MoAmqpConfigError);
    expect((failure as Error).message).toContain(`AMQP__OUTBOX_TABLE (outboxTable)`);
    expect((failure as Error).message).toContain(missing);
    expect((failure as Error).message).toContain('mo-amqp outbox migrate');
    expect((failure as Error).message).not.toContain(':mo_amqp@');
  });
});
