import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { MoEventsService } from '../../lib';
import { BROKER_URL, Collector, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { PG_URL, sql, uniqueTable } from '../support/postgres';
import { until } from '../support/until';

const exchange = uniqueName('sample');
const UNKNOWN = '00000000-0000-4000-8000-000000000000';
// The app's tables (fixed names) and its outbox, in a schema of this run's own, dropped after.
const schema = uniqueTable('sample');
const OUTBOX = `${schema}.mo_amqp_outbox`;

describe('the sample organisation app, with AMQP on, its data in PostgreSQL and the outbox on', () => {
  let broker: TestBroker;
  let collector: Collector;
  let app: INestApplication;
  let logger: CapturingLogger;
  const saved = { ...process.env };
  let person: { uuid: string; name: string };

  beforeAll(async () => {
    broker = await TestBroker.connect();
    collector = await broker.collect(exchange);
    await sql(`CREATE SCHEMA "${schema}"`);
    Object.assign(process.env, {
      ENABLE_AMQP: 'true',
      AMQP__URL: BROKER_URL,
      AMQP__EXCHANGE: exchange,
      DATABASE_URL: PG_URL,
      DATABASE_SCHEMA: schema,
      AMQP__OUTBOX: 'postgres',
      AMQP__OUTBOX_URL: PG_URL,
      AMQP__OUTBOX_TABLE: OUTBOX,
    });
    // Imported only now: the sample's consumer reads AMQP__EXCHANGE when its file loads.
    const { AppModule } = await import('../../sample-app/src/app.module');
    const { setupApp } = await import('../../sample-app/src/setup-app');
    logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] })
      .setLogger(logger)
      .compile();
    app = setupApp(moduleRef.createNestApplication());
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
    await broker.close();
    await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    process.env = saved;
  });

  /** The events that arrived since the last call, as [routing key, body]. */
  let seen = 0;
  async function newEvents(count: number): Promise<[string, Record<string, string>][]> {
    await collector.waitFor(seen + count);
    // Anything beyond `count` would be an event that should not exist.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const fresh = collector.messages.slice(seen);
    seen = collector.messages.length;
    return fresh.map((m) => [m.fields.routingKey, JSON.parse(m.content.toString('utf8'))]);
  }

  it('publishes exactly the expected routing keys, UUIDs and times, and nothing for failed requests', async () => {
    const http = () => request(app.getHttpServer());

    const unit = (await http().post('/org-units').send({ name: 'Kommune', validFrom: '2021-01-01' }).expect(201)).body;
    expect(await newEvents(1)).toEqual([
      ['org_unit.org_unit.create', { uuid: unit.uuid, time: '2021-01-01T00:00:00+00:00' }],
    ]);

    const before = Date.now();
    person = (await http().post('/employees').send({ name: 'Anne' }).expect(201)).body;
    const [[key, body]] = await newEvents(1);
    expect([key, body.uuid]).toEqual(['employee.employee.create', person.uuid]);
    // No validFrom: the time is now, in the contract's shape.
    expect(body.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/);
    expect(Date.parse(body.time)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(body.time)).toBeLessThanOrEqual(Date.now());

    const validFrom = '2021-07-27T00:00:00+02:00';
    const engagement = (
      await http()
        .post('/engagements')
        .send({ employeeUuid: person.uuid, orgUnitUuid: unit.uuid, jobTitle: 'Developer', validFrom })
        .expect(201)
    ).body;
    expect(await newEvents(2)).toEqual([
      ['employee.engagement.create', { uuid: person.uuid, time: validFrom, object_uuid: engagement.uuid }],
      ['org_unit.engagement.create', { uuid: unit.uuid, time: validFrom, object_uuid: engagement.uuid }],
    ]);

    const address = (
      await http()
        .post('/addresses')
        .send({ employeeUuid: person.uuid, addressType: 'email', value: 'anne@example.org', validFrom: '2021-08-01' })
        .expect(201)
    ).body;
    expect(await newEvents(1)).toEqual([
      ['employee.address.create', { uuid: person.uuid, time: '2021-08-01T00:00:00+00:00', object_uuid: address.uuid }],
    ]);

    await http()
      .patch(`/engagements/${engagement.uuid}`)
      .send({ jobTitle: 'Lead', validFrom: '2022-01-01' })
      .expect(200);
    expect(await newEvents(2)).toEqual([
      [
        'employee.engagement.update',
        { uuid: person.uuid, time: '2022-01-01T00:00:00+00:00', object_uuid: engagement.uuid },
      ],
      [
        'org_unit.engagement.update',
        { uuid: unit.uuid, time: '2022-01-01T00:00:00+00:00', object_uuid: engagement.uuid },
      ],
    ]);

    // Failed requests: bad input is 400, an unknown UUID is 404, and none publishes.
    await http().post('/engagements').send({ employeeUuid: person.uuid, orgUnitUuid: unit.uuid }).expect(400);
    await http()
      .post('/engagements')
      .send({ employeeUuid: UNKNOWN, orgUnitUuid: unit.uuid, jobTitle: 'Ghost' })
      .expect(404);
    await http().post('/employees').send({ name: 'Bo', validFrom: 'yesterday' }).expect(400);
    await http().post('/employees').send({ name: 'Bo', admin: true }).expect(400);
    await http().patch(`/employees/${UNKNOWN}`).send({ name: 'Nobody' }).expect(404);
    await http().patch('/employees/not-a-uuid').send({ name: 'Nobody' }).expect(400);
    await http()
      .post('/addresses')
      .send({ employeeUuid: person.uuid, orgUnitUuid: unit.uuid, addressType: 'phone', value: '12345678' })
      .expect(400);
    await http().delete(`/engagements/${engagement.uuid}?validFrom=soon`).expect(400);
    await http().delete(`/addresses/${UNKNOWN}`).expect(404);

    await http().delete(`/engagements/${engagement.uuid}?validFrom=2023-01-01`).expect(200);
    expect(await newEvents(2)).toEqual([
      [
        'employee.engagement.delete',
        { uuid: person.uuid, time: '2023-01-01T00:00:00+00:00', object_uuid: engagement.uuid },
      ],
      [
        'org_unit.engagement.delete',
        { uuid: unit.uuid, time: '2023-01-01T00:00:00+00:00', object_uuid: engagement.uuid },
      ],
    ]);
    expect(collector.messages).toHaveLength(9);
  });

  it('keeps its data in PostgreSQL and sends every event through the outbox; a request rolled back at COMMIT sends none', async () => {
    const events = app.get(MoEventsService);
    expect(await sql(`SELECT uuid, name FROM "${schema}".employee`)).toEqual([{ uuid: person.uuid, name: 'Anne' }]);
    // Each event was a row of its request's transaction, relayed after the commit; none published directly.
    await until(() => events.counters.relayed === 9, 'the relay to count the nine events');
    expect(events.counters).toMatchObject({ outboxed: 9, relayed: 9, published: 0, failed: 0 });
    await until(async () => (await sql(`SELECT id FROM ${OUTBOX}`)).length === 0, 'the relayed rows deleted', 5_000);

    // Anne still has an address: the deferred foreign key fails the COMMIT, after the delete's
    // event was written to the outbox. It is rolled back with the delete, and never sent.
    const refused = await request(app.getHttpServer()).delete(`/employees/${person.uuid}`).expect(409);
    expect(refused.body.message).toMatch(/is still referenced from table "address"/);
    expect(events.counters).toMatchObject({ outboxed: 10, relayed: 9 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(collector.messages).toHaveLength(9);
    expect(events.counters.relayed).toBe(9);
    expect(await sql(`SELECT uuid FROM "${schema}".employee`)).toEqual([{ uuid: person.uuid }]);
    expect(await sql(`SELECT id FROM ${OUTBOX}`)).toEqual([]);
  });

  it('logs every event through its own plain @RabbitSubscribe consumer, as the seed’s example prints them', async () => {
    const deadline = Date.now() + 5_000;
    const lines = () => logger.lines.filter((l) => l.includes('[org_unit.engagement.delete]'));
    while (lines().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(lines()[0]).toMatch(
      /^LOG \[org_unit\.engagement\.delete\] \{"uuid": "[0-9a-f-]{36}", "object_uuid": "[0-9a-f-]{36}", "time": "2023-01-01T00:00:00\+00:00"/,
    );
    expect(logger.lines.filter((l) => /^LOG \[[a-z_]+\.[a-z_]+\.[a-z]+\] \{"uuid"/.test(l))).toHaveLength(9);
  });

  it('answers GET /health with the broker connection, the spool, the outbox and the event counters', async () => {
    const res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body).toMatchObject({
      status: 'ok',
      info: {
        amqp: {
          status: 'up',
          enabled: true,
          connected: true,
          spooled: 0,
          spoolBytes: 0,
          outboxDatabaseReachable: true,
          outboxRelaying: true,
        },
        events: { status: 'up', outboxed: 10, relayed: 9 },
      },
    });
  });
});
