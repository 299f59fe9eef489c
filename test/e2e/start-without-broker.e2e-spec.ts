import { RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Injectable, Module } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import type { ConsumeMessage } from 'amqplib';
import { resolve } from 'node:path';
import {
  MoAmqpConnectionError,
  MoAmqpHealthIndicator,
  MoAmqpModule,
  MoDelayAgentModule,
  MoEventMessage,
  MoEventSubscribe,
  MoEventsService,
  MoPublishError,
} from '../../lib';
import { bootApp, testSpoolDir, withEnv } from '../support/app';
import { TcpProxy, TestBroker, closedPort, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';

// A password of letters no error text holds, so a leak check cannot match by chance.
const SECRET = 'Qzxwvj-Secret-97';
const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

@Module({ imports: [MoAmqpModule.forRootAsync()] })
class EnvAppModule {}

describe('start-up while RabbitMQ is unreachable (startWithoutBroker)', () => {
  let app: TestingModule | undefined;
  let proxy: TcpProxy | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await proxy?.close();
    proxy = undefined;
  });

  it('auto with the spool: starts at once, says so once, is down with the reason, and spools', async () => {
    const port = await closedPort();
    const spoolDir = testSpoolDir();
    const logger = new CapturingLogger();
    const started = Date.now();
    app = await bootApp(
      { enabled: true, url: `amqp://admin:${SECRET}@127.0.0.1:${port}/mo`, spoolDir, connectTimeoutMs: 10_000 },
      { logger },
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    const warnings = logger.lines
      .filter((line) => line.startsWith('WARN'))
      .filter((line) => line.includes('Started without RabbitMQ'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`amqp://admin:***@127.0.0.1:${port}/mo is unreachable`);
    expect(warnings[0]).toContain('ECONNREFUSED');
    expect(warnings[0]).toContain(`Events wait in the spool in ${resolve(spoolDir)}`);
    expect(warnings[0]).toContain('AMQP__START_WITHOUT_BROKER=false waits for it and fails instead');

    const events = app.get(MoEventsService);
    expect(events.connected).toBe(false);
    const health = (await app.get(MoAmqpHealthIndicator).isHealthy()).amqp;
    expect(health).toMatchObject({ status: 'down', enabled: true, connected: false });
    expect(health.brokerError).toContain('ECONNREFUSED');
    expect((await events.publish('employee', 'it', 'create', UUID)).status).toBe('spooled');
    expect(events.spoolStats?.records).toBe(1);
    expect(logger.text + JSON.stringify(health)).not.toContain(SECRET);
  });

  it('reads AMQP__START_WITHOUT_BROKER=false: waits the connect timeout and fails as before', async () => {
    const port = await closedPort();
    const started = Date.now();
    const err = await withEnv(
      {
        ENABLE_AMQP: 'true',
        AMQP__URL: `amqp://127.0.0.1:${port}`,
        AMQP__SPOOL_DIR: testSpoolDir(),
        AMQP__CONNECT_TIMEOUT_MS: '1500',
        AMQP__START_WITHOUT_BROKER: 'false',
      },
      async () => {
        const moduleRef = await Test.createTestingModule({ imports: [EnvAppModule] })
          .setLogger(new CapturingLogger())
          .compile();
        return moduleRef.init().catch(async (e: unknown) => {
          await moduleRef.close().catch(() => undefined);
          return e;
        });
      },
    );
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect((err as Error).message).toContain(
      `Could not connect to RabbitMQ at amqp://127.0.0.1:${port} within 1500 ms`,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
  });

  it('auto without a durable path (spool off, no outbox): fails as before', async () => {
    const port = await closedPort();
    const started = Date.now();
    const err = await bootApp({
      enabled: true,
      url: `amqp://127.0.0.1:${port}`,
      spoolDir: 'off',
      connectTimeoutMs: 1_500,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect((err as Error).message).toContain('within 1500 ms (last error: connect ECONNREFUSED');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
  });

  it('the delay agent has no durable path: with the spool on, it still waits the connect timeout and fails', async () => {
    const port = await closedPort();
    const started = Date.now();
    const err = await bootApp(
      { enabled: true, url: `amqp://127.0.0.1:${port}`, connectTimeoutMs: 1_500 },
      {
        imports: [MoDelayAgentModule.forRoot({ prefix: uniqueName('startless-agent') })],
        logger: new CapturingLogger(),
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect((err as Error).message).toContain(
      `Could not connect to RabbitMQ at amqp://127.0.0.1:${port} within 1500 ms`,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    expect(Date.now() - started).toBeLessThan(6_000);
  });

  it('true without a durable path: starts, and a publish fails with MoPublishError (timeout) while it is away', async () => {
    const port = await closedPort();
    const logger = new CapturingLogger();
    app = await bootApp(
      {
        enabled: true,
        url: `amqp://127.0.0.1:${port}`,
        spoolDir: 'off',
        startWithoutBroker: 'true',
        publishTimeoutMs: 500,
      },
      { logger },
    );
    expect(logger.text).toContain(
      'Without the spool or the outbox, publishes fail with MoPublishError until it answers',
    );
    const err = await app
      .get(MoEventsService)
      .publish('employee', 'it', 'create', UUID)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoPublishError);
    expect((err as MoPublishError).reason).toBe('timeout');
  });

  it('when the broker comes: the spool drains, and @MoEventSubscribe and @RabbitSubscribe consumers attach', async () => {
    const broker = await TestBroker.connect();
    const exchange = uniqueName('late');
    broker.track(exchange);
    const moQueue = uniqueName('late-mo');
    const plainQueue = uniqueName('late-plain');
    for (const queue of [moQueue, `${moQueue}.dlq`, plainQueue]) broker.trackQueue(queue);
    const received: MoEventMessage[] = [];
    const plain: string[] = [];
    @Injectable()
    class Consumers {
      @MoEventSubscribe({ queue: moQueue })
      async onEvent(event: MoEventMessage) {
        received.push(event);
      }

      @RabbitSubscribe({ exchange, routingKey: '#', queue: plainQueue })
      onPlain(_payload: unknown, message: ConsumeMessage) {
        plain.push(message.fields.routingKey);
      }
    }
    // Bound before: what the spool sends at the first connect may come before the consumers' queues exist.
    const collector = await broker.collect(exchange);
    proxy = await TcpProxy.start();
    proxy.block();
    const logger = new CapturingLogger();
    const started = Date.now();
    app = await bootApp({ enabled: true, url: proxy.url, exchange }, { providers: [Consumers], logger });
    expect(Date.now() - started).toBeLessThan(3_000);
    const events = app.get(MoEventsService);
    expect((await events.publish('employee', 'it', 'create', UUID)).status).toBe('spooled');

    proxy.unblock();
    const [drained] = await collector.waitFor(1, 15_000);
    expect(JSON.parse(drained.content.toString())).toMatchObject({ uuid: UUID });
    // A channel of its own for each look: a queue not there yet closes the channel that asked.
    const consumed = async (queue: string) => {
      const channel = await broker.connection.createChannel();
      channel.on('error', () => undefined);
      const found = await channel.checkQueue(queue).catch(() => undefined);
      await channel.close().catch(() => undefined);
      return found?.consumerCount === 1;
    };
    await until(async () => (await consumed(moQueue)) && (await consumed(plainQueue)), 'both consumers', 15_000);
    expect(events.connected).toBe(true);
    expect((await app.get(MoAmqpHealthIndicator).isHealthy()).amqp).not.toHaveProperty('brokerError');
    expect((await events.publish('employee', 'it', 'update', UUID)).status).toBe('confirmed');
    // The spooled event reaches them too when their queues were declared before the spool drained.
    await until(
      () => received.some((e) => e.routingKey === 'employee.it.update') && plain.includes('employee.it.update'),
      'both consumers to get the new event',
    );
    await app.close();
    app = undefined;
    await broker.close();
  }, 40_000);

  it('a broker that answers with a refusal after such a start: one ERROR with the start-up text, kept for health', async () => {
    proxy = await TcpProxy.start();
    proxy.block();
    const logger = new CapturingLogger();
    app = await bootApp({ enabled: true, url: `amqp://guest:${SECRET}@127.0.0.1:${proxy.port}/` }, { logger });
    proxy.unblock();
    const refused = () =>
      logger.lines
        .filter((line) => line.startsWith('ERROR'))
        .filter((line) => line.includes('refused the login of user "guest"'));
    await until(() => refused().length === 1, 'the refusal to be logged', 10_000);
    // The library retries every 2 s: the same refusal is not logged again.
    await new Promise((done) => setTimeout(done, 4_500));
    expect(refused()).toHaveLength(1);
    expect(refused()[0]).toContain('ACCESS_REFUSED');
    const health = (await app.get(MoAmqpHealthIndicator).isHealthy()).amqp;
    expect(health).toMatchObject({ status: 'down', connected: false });
    expect(health.brokerError).toContain('refused the login of user "guest"');
    expect(logger.text + JSON.stringify(health)).not.toContain(SECRET);
  }, 30_000);
});
