import { RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MoAmqpModule, MoEventValidationError, MoEventsService } from '../../lib';
import { bootApp, withEnv } from '../support/app';
import { CapturingLogger } from '../support/capturing-logger';
import { TcpProxy } from '../support/broker';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

/** Would take any AMQP connection; the specs check that none comes. */
let listener: TcpProxy;

beforeEach(async () => {
  listener = await TcpProxy.start(null);
});

afterEach(async () => {
  await listener.close();
});

describe('with AMQP disabled (the default)', () => {
  it('opens no connection, and publish resolves at once saying nothing was sent', async () => {
    const logger = new CapturingLogger();
    const app = await bootApp({ host: '127.0.0.1', port: listener.port }, { logger });
    const result = await app
      .get(MoEventsService)
      .publish('employee', 'engagement', 'create', UUID, { time: new Date('2019-03-24T13:02:15.132Z') });
    await app.close();

    expect(result).toMatchObject({
      status: 'disabled',
      exchange: 'os2mo',
      routingKey: 'employee.engagement.create',
      body: `{"uuid": "${UUID}", "time": "2019-03-24T13:02:15.132000+00:00"}`,
    });
    expect(app.get(MoEventsService).enabled).toBe(false);
    expect(listener.connections).toBe(0);
    expect(logger.text).toContain('AMQP is disabled (ENABLE_AMQP is off)');
  });

  it('is off when ENABLE_AMQP is unset, and the app’s @RabbitSubscribe handlers stay idle', async () => {
    @Injectable()
    class Consumer {
      @RabbitSubscribe({ exchange: 'os2mo', routingKey: '#', queue: 'never-declared' })
      handle() {}
    }
    @Module({ imports: [MoAmqpModule.forRootAsync()], providers: [Consumer] })
    class AppModule {}

    await withEnv({ ENABLE_AMQP: undefined, AMQP__HOST: '127.0.0.1', AMQP__PORT: String(listener.port) }, async () => {
      const app = await Test.createTestingModule({ imports: [AppModule] }).compile();
      await app.init();
      const result = await app.get(MoEventsService).publish('org_unit', 'org_unit', 'delete', UUID);
      await app.close();
      expect(result.status).toBe('disabled');
    });
    expect(listener.connections).toBe(0);
  });

  it('still rejects bad events, so a mistake shows before AMQP is turned on', async () => {
    const app = await bootApp({ enabled: false });
    const publish = app.get(MoEventsService).publish as (...args: unknown[]) => Promise<unknown>;
    await expect(publish.call(app.get(MoEventsService), 'employee', 'it', 'create', 'nope')).rejects.toBeInstanceOf(
      MoEventValidationError,
    );
    await app.close();
  });
});
