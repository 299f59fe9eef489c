import { ClsPluginTransactional, Transactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterDrizzleOrm } from '@nestjs-cls/transactional-adapter-drizzle-orm';
import { Injectable, Module } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import { sql as drizzleSql } from 'drizzle-orm';
import { NodePgDatabase, drizzle } from 'drizzle-orm/node-postgres';
import { pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { ClsModule } from 'nestjs-cls';
import { Pool } from 'pg';
import { MoEvent, MoEventsService } from '../../lib';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { PG_URL, outboxTable, sql, uniqueTable } from '../support/postgres';
import { until } from '../support/until';

const UNITS = uniqueTable('unit');
const units = pgTable(UNITS, { uuid: uuid('uuid').primaryKey(), name: text('name').notNull() });
const DRIZZLE = Symbol('DRIZZLE');
const UNIT = '7ac3d7a6-54a5-4d32-8a5b-0c3a59c1b7a1';
const OTHER = '0d7f6f0e-2c3f-4a59-9d3c-6d1b7a0e8f21';

type Db = NodePgDatabase;

@Module({
  providers: [
    { provide: 'PG_POOL', useFactory: () => new Pool({ connectionString: PG_URL, max: 4 }) },
    { provide: DRIZZLE, inject: ['PG_POOL'], useFactory: (pool: Pool) => drizzle(pool) },
  ],
  exports: [DRIZZLE, 'PG_POOL'],
})
class DrizzleModule {}

@Injectable()
class Units {
  constructor(
    private readonly txHost: TransactionHost<TransactionalAdapterDrizzleOrm<Db>>,
    private readonly events: MoEventsService,
  ) {}

  @Transactional()
  @MoEvent('org_unit', 'org_unit', 'create')
  async create(uuid: string, name: string): Promise<string> {
    await this.txHost.tx.insert(units).values({ uuid, name });
    return uuid;
  }

  @Transactional()
  async createThenFail(uuid: string): Promise<void> {
    await this.create(uuid, 'doomed');
    throw new Error('rolled back on purpose');
  }

  @Transactional()
  async publishInside(uuid: string) {
    await this.txHost.tx.insert(units).values({ uuid, name: 'by publish()' });
    return this.events.publish('org_unit', 'org_unit', 'create', uuid);
  }
}

describe('the PostgreSQL outbox with Drizzle ORM on node-postgres', () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;
  let table: { name: string; drop(): Promise<void> };

  beforeAll(async () => {
    await sql(`CREATE TABLE IF NOT EXISTS "${UNITS}" (uuid uuid PRIMARY KEY, name text NOT NULL)`);
  });

  afterAll(async () => {
    await sql(`DROP TABLE IF EXISTS "${UNITS}"`);
  });

  beforeEach(async () => {
    broker = await TestBroker.connect();
    table = await outboxTable();
    await sql(`DELETE FROM "${UNITS}"`);
  });

  afterEach(async () => {
    const pool = app?.get<Pool>('PG_POOL');
    await app?.close();
    await pool?.end();
    app = undefined;
    await broker.close();
    await table.drop();
  });

  async function boot(exchange: string) {
    app = await bootApp(
      { enabled: true, url: BROKER_URL, exchange, outbox: 'postgres', outboxUrl: PG_URL, outboxTable: table.name },
      {
        imports: [
          DrizzleModule,
          ClsModule.forRoot({
            global: true,
            plugins: [
              new ClsPluginTransactional({
                imports: [DrizzleModule],
                adapter: new TransactionalAdapterDrizzleOrm({ drizzleInstanceToken: DRIZZLE }),
              }),
            ],
          }),
        ],
        providers: [Units],
        logger: new CapturingLogger(),
      },
    );
    return { units: app.get(Units), events: app.get(MoEventsService) };
  }

  it('writes the event in the Drizzle transaction and relays it after the commit', async () => {
    const exchange = uniqueName('drizzle');
    const collector = await broker.collect(exchange, 'org_unit.#');
    const { units: service, events } = await boot(exchange);

    const result = await service.publishInside(UNIT);
    expect(result.status).toBe('outboxed');
    const [message] = await collector.waitFor(1);
    expect(message.properties.messageId).toBe(result.messageId);
    expect(message.content.toString()).toBe(result.body);
    await until(() => events.counters.relayed === 1, 'the relay to count its row');
  });

  it('rolls the event back with the change', async () => {
    const exchange = uniqueName('drizzle-rollback');
    const collector = await broker.collect(exchange, 'org_unit.#');
    const { units: service } = await boot(exchange);

    await expect(service.createThenFail(UNIT)).rejects.toThrow('rolled back on purpose');
    await service.create(OTHER, 'kept');
    const [only] = await collector.waitFor(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(collector.messages).toHaveLength(1);
    expect(JSON.parse(only.content.toString()).uuid).toBe(OTHER);
    const db = drizzle(new Pool({ connectionString: PG_URL, max: 1 }));
    const rows = await db.execute(drizzleSql.raw(`SELECT uuid FROM "${UNITS}"`));
    expect(rows.rows).toEqual([{ uuid: OTHER }]);
    await (db.$client as Pool).end();
  });
});
