import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MoAmqpConfigError, MoAmqpConnectionError, MoAmqpModule, MoEventSubscribe, MoEventsService } from '../../lib';
import { bootApp, withEnv } from '../support/app';
import { BROKER_URL, TcpProxy, TestBroker, closedPort, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';

const SECRET = 'Top-Secret-42';

@Module({ imports: [MoAmqpModule.forRootAsync()] })
class EnvAppModule {}

async function bootFromEnv(logger: CapturingLogger) {
  const app = await Test.createTestingModule({ imports: [EnvAppModule] })
    .setLogger(logger)
    .compile();
  await app.init();
  return app;
}

describe('start-up', () => {
  it('reads the environment through forRootAsync() with no arguments and publishes', async () => {
    const broker = await TestBroker.connect();
    const exchange = uniqueName('env');
    const collector = await broker.collect(exchange);
    const url = new URL(BROKER_URL);
    await withEnv(
      {
        ENABLE_AMQP: 'True',
        AMQP__EXCHANGE: exchange,
        AMQP__URL: undefined,
        AMQP__HOST: url.hostname,
        AMQP__PORT: url.port || '5672',
        AMQP__TIME_ZONE: 'Europe/Copenhagen',
      },
      async () => {
        const app = await bootFromEnv(new CapturingLogger());
        await app
          .get(MoEventsService)
          .publish('employee', 'engagement', 'create', 'c390b9a2-7202-48e6-972b-ce36a90065c4', {
            time: new Date('2021-07-26T22:00:00Z'),
          });
        await app.close();
      },
    );
    const [message] = await collector.waitFor(1);
    expect(JSON.parse(message.content.toString())).toEqual({
      uuid: 'c390b9a2-7202-48e6-972b-ce36a90065c4',
      time: '2021-07-27T00:00:00+02:00',
    });
    await broker.close();
  });

  it('stops on bad configuration with one message naming each variable, without the password', async () => {
    const logger = new CapturingLogger();
    const err = await withEnv(
      { ENABLE_AMQP: 'maybe', AMQP__URL: `amqp://admin:${SECRET}@localhost:99999`, AMQP__PORT: undefined },
      () => bootFromEnv(logger).catch((e: unknown) => e),
    );
    expect(err).toBeInstanceOf(MoAmqpConfigError);
    const message = (err as Error).message;
    expect(message).toContain('ENABLE_AMQP: received "maybe"; allowed: true, false, 1, 0, yes or no');
    expect(message).toContain('AMQP__URL: received "amqp://***@localhost:99999"; allowed: an amqp://');
    expect(message).not.toContain(SECRET);
    expect(logger.text).not.toContain(SECRET);
  });

  it('stops on a bad forRoot() option before anything connects', async () => {
    const listener = await TcpProxy.start(null);
    const err = await bootApp({ enabled: true, host: '127.0.0.1', port: listener.port, exchange: 'amq.topic' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MoAmqpConfigError);
    expect((err as Error).message).toContain('exchange: received "amq.topic"');
    expect(listener.connections).toBe(0);
    await listener.close();
  });

  it('fails after the connect timeout when no broker answers, naming the address without its password', async () => {
    const port = await closedPort();
    const logger = new CapturingLogger();
    const started = Date.now();
    const err = await bootApp(
      // Waiting is what is tested here; start-without-broker.e2e-spec.ts has the start without it.
      {
        enabled: true,
        url: `amqp://admin:${SECRET}@127.0.0.1:${port}/mo`,
        connectTimeoutMs: 1_500,
        startWithoutBroker: 'false',
      },
      { logger },
    ).catch((e: unknown) => e);
    const waited = Date.now() - started;

    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    const message = (err as Error).message;
    expect(message).toContain(`Could not connect to RabbitMQ at amqp://admin:***@127.0.0.1:${port}/mo within 1500 ms`);
    expect(message).toContain('ECONNREFUSED');
    expect((err as MoAmqpConnectionError).broker).toBe(`amqp://admin:***@127.0.0.1:${port}/mo`);
    expect(waited).toBeGreaterThanOrEqual(1_400);
    expect(waited).toBeLessThan(6_000);
    expect(message + logger.text).not.toContain(SECRET);
  });

  it('gives up on a host that accepts TCP but never speaks AMQP, and stops trying', async () => {
    const silent = await TcpProxy.start(null);
    const err = await bootApp({
      enabled: true,
      host: '127.0.0.1',
      port: silent.port,
      connectTimeoutMs: 1_000,
      startWithoutBroker: 'false',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    const attempts = silent.connections;
    expect(attempts).toBeGreaterThanOrEqual(1);
    // No reconnect loop is left behind (the library retries every 2 s).
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(silent.connections).toBe(attempts);
    await silent.close();
  });

  it('fails fast on a refused login, without the password in the error or the logs', async () => {
    const url = new URL(BROKER_URL);
    url.username = 'guest';
    url.password = SECRET;
    const logger = new CapturingLogger();
    const started = Date.now();
    const err = await bootApp({ enabled: true, url: url.toString(), connectTimeoutMs: 20_000 }, { logger }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect((err as Error).message).toContain('refused the login of user "guest"');
    expect((err as Error).message).toContain('ACCESS_REFUSED');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((err as Error).message + logger.text).not.toContain(SECRET);
    // The spool is on here (bootApp gives every app one): a refusal is never taken for an outage.
    expect(logger.text).not.toContain('Started without RabbitMQ');
  });

  it('fails when the exchange exists with other settings, saying which', async () => {
    const broker = await TestBroker.connect();
    const exchange = uniqueName('conflict');
    await broker.channel.assertExchange(exchange, 'fanout', { durable: false });
    broker.track(exchange);
    const logger = new CapturingLogger();
    const err = await bootApp({ enabled: true, url: BROKER_URL, exchange, connectTimeoutMs: 5_000 }, { logger }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect((err as Error).message).toContain(
      `Exchange "${exchange}" (vhost "/") exists as a fanout exchange; MO events need a topic exchange`,
    );
    await broker.close();
  });

  it('closes its connection when start-up fails after connecting (Nest runs no shutdown hook then)', async () => {
    const proxy = await TcpProxy.start();
    const broker = await TestBroker.connect();
    const queue = uniqueName('taken');
    broker.trackQueue(queue);
    await broker.channel.assertQueue(queue, { durable: true }); // no dead-letter arguments: a conflict
    @Injectable()
    class Consumer {
      @MoEventSubscribe({ queue })
      async onEvent() {}
    }
    const moduleRef = await Test.createTestingModule({
      imports: [MoAmqpModule.forRoot({ enabled: true, url: proxy.url })],
      providers: [Consumer],
    })
      .setLogger(new CapturingLogger())
      .compile();
    const err = await moduleRef.init().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect(proxy.connections).toBe(1);
    // Longer than the 2 s reconnect interval: a connection left behind would have come back.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(proxy.openSockets).toBe(0);
    expect(proxy.connections).toBe(1);
    await proxy.close();
    await broker.close();
  });

  it('tries a cluster’s URLs in turn: a node that is down does not stop the start', async () => {
    const down = await closedPort();
    const logger = new CapturingLogger();
    const url = `amqp://guest:${SECRET}@127.0.0.1:${down}, ${BROKER_URL}`;
    const app = await bootApp({ enabled: true, url, connectTimeoutMs: 15_000 }, { logger });
    expect(app.get(MoEventsService).connected).toBe(true);
    await app.close();
    expect(logger.text).toContain(`amqp://guest:***@127.0.0.1:${down}`);
    expect(logger.text).not.toContain(SECRET);
  });
});
