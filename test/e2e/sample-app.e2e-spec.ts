import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { AppModule } from '../../sample-app/src/app.module';
import { withEnv } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

describe('the sample app, with AMQP on', () => {
  it('publishes an event posted over HTTP, and answers 400 to a bad one without sending it', async () => {
    const broker = await TestBroker.connect();
    const exchange = uniqueName('sample');
    const collector = await broker.collect(exchange);
    await withEnv({ ENABLE_AMQP: 'true', AMQP__URL: BROKER_URL, AMQP__EXCHANGE: exchange }, async () => {
      const moduleRef = await Test.createTestingModule({ imports: [AppModule] })
        .setLogger(new CapturingLogger())
        .compile();
      const app: INestApplication = moduleRef.createNestApplication();
      await app.init();
      try {
        const ok = await request(app.getHttpServer())
          .post('/events/employee/engagement/create')
          .send({ uuid: UUID, time: '2021-07-27T00:00:00+02:00' })
          .expect(201);
        expect(ok.body).toMatchObject({ status: 'confirmed', routingKey: 'employee.engagement.create' });

        const bad = await request(app.getHttpServer()).post('/events/employee/engagement/edit').send({ uuid: UUID });
        expect(bad.status).toBe(400);
        expect(bad.body.message).toContain('Invalid MO event action: received "edit"');
      } finally {
        await app.close();
      }
    });
    await collector.waitFor(1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(collector.messages.map((m) => m.fields.routingKey)).toEqual(['employee.engagement.create']);
    expect(collector.messages[0].content.toString()).toBe(`{"uuid": "${UUID}", "time": "2021-07-27T00:00:00+02:00"}`);
    await broker.close();
  });
});
