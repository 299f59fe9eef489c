import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { BROKER_URL, Collector, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';

const exchange = uniqueName('sample');
const UNKNOWN = '00000000-0000-4000-8000-000000000000';

describe('the sample organisation app, with AMQP on', () => {
  let broker: TestBroker;
  let collector: Collector;
  let app: INestApplication;
  let logger: CapturingLogger;
  const saved = { ...process.env };

  beforeAll(async () => {
    broker = await TestBroker.connect();
    collector = await broker.collect(exchange);
    Object.assign(process.env, { ENABLE_AMQP: 'true', AMQP__URL: BROKER_URL, AMQP__EXCHANGE: exchange });
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
    const person = (await http().post('/employees').send({ name: 'Anne' }).expect(201)).body;
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

  it('logs every event through its own plain @RabbitSubscribe consumer, as the seed’s example prints them', async () => {
    const deadline = Date.now() + 5_000;
    const lines = () => logger.lines.filter((l) => l.includes('[org_unit.engagement.delete]'));
    while (lines().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(lines()[0]).toMatch(
      /^LOG \[org_unit\.engagement\.delete\] \{"uuid": "[0-9a-f-]{36}", "object_uuid": "[0-9a-f-]{36}", "time": "2023-01-01T00:00:00\+00:00"/,
    );
    expect(logger.lines.filter((l) => /^LOG \[[a-z_]+\.[a-z_]+\.[a-z]+\] \{"uuid"/.test(l))).toHaveLength(9);
  });

  it('answers GET /health with the broker connection and the spool', async () => {
    const res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body).toMatchObject({
      status: 'ok',
      info: { amqp: { status: 'up', enabled: true, connected: true, spooled: 0, spoolBytes: 0 } },
    });
  });
});
