import { AmqpConnection, RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import * as amqp from 'amqplib';
import {
  MO_SEED_ACTIONS,
  MO_SEED_OBJECT_TYPES,
  MO_SERVICES,
  MoEventValidationError,
  MoEventsService,
  MoPublishError,
  MoPublishResult,
  allMoRoutingKeys,
  parseMoRoutingKey,
} from '../../lib';
import { bootApp, testSpoolDir } from '../support/app';
import { BROKER_URL, Collector, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('MoEventsService publishing to RabbitMQ', () => {
  let broker: TestBroker;
  let exchange: string;
  let collector: Collector;
  let app: TestingModule | undefined;
  let proxy: TcpProxy | undefined;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('events');
    collector = await broker.collect(exchange, '#');
  });

  afterEach(async () => {
    proxy?.resume();
    await app?.close();
    await proxy?.close();
    await broker.close();
    app = undefined;
    proxy = undefined;
  });

  it('delivers all 60 routing keys to a queue bound #, with the contract’s bytes and properties', async () => {
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange });
    const events = app.get(MoEventsService);
    const time = new Date('2019-03-24T13:02:15.132Z');
    const before = Math.floor(Date.now() / 1000);

    const results: MoPublishResult[] = [];
    for (const service of MO_SERVICES) {
      for (const objectType of MO_SEED_OBJECT_TYPES) {
        for (const action of MO_SEED_ACTIONS) {
          results.push(await events.publish(service, objectType, action, UUID, { time }));
        }
      }
    }
    const after = Math.ceil(Date.now() / 1000);
    const messages = await collector.waitFor(60);

    expect(results.every((r) => r.status === 'confirmed')).toBe(true);
    expect(messages.map((m) => m.fields.routingKey).sort()).toEqual([...allMoRoutingKeys()].sort());
    const body = `{"uuid": "${UUID}", "time": "2019-03-24T13:02:15.132000+00:00"}`;
    for (const message of messages) {
      expect(message.fields.exchange).toBe(exchange);
      expect(message.content.equals(Buffer.from(body, 'utf8'))).toBe(true);
      expect(message.properties.deliveryMode).toBe(2);
      expect(message.properties.contentType).toBe('application/json');
      expect(message.properties.messageId).toMatch(UUID_V4);
      expect(message.properties.timestamp).toBeGreaterThanOrEqual(before);
      expect(message.properties.timestamp).toBeLessThanOrEqual(after);
    }
    // Each message carries the id its result reported, and every id is fresh.
    const ids = new Map(messages.map((m) => [m.properties.messageId as string, m.fields.routingKey]));
    expect(ids.size).toBe(60);
    for (const result of results) expect(ids.get(result.messageId)).toBe(result.routingKey);
    expect(parseMoRoutingKey(messages[0].fields.routingKey)).toBeDefined();
  });

  it('in the os2mo vocabulary delivers all 104 of OS2mo’s routing keys (rolebinding among them), each body as OS2mo wrote it', async () => {
    app = await bootApp({
      enabled: true,
      url: BROKER_URL,
      exchange,
      vocabulary: 'os2mo',
      timeZone: 'Europe/Copenhagen',
    });
    const events = app.get(MoEventsService);
    const objectUuid = '5e2a5b2b-8d5e-4c1e-9a53-0b8c2f3d4e5f';
    const time = new Date('2021-07-26T22:00:00Z');
    for (const key of allMoRoutingKeys('os2mo')) {
      const [s, o, a] = key.split('.') as [never, never, never];
      expect((await events.publish(s, o, a, UUID, { time, objectUuid })).status).toBe('confirmed');
    }
    const messages = await collector.waitFor(104);
    expect(messages.map((m) => m.fields.routingKey).sort()).toEqual([...allMoRoutingKeys('os2mo')].sort());
    const body = `{"uuid": "${UUID}", "object_uuid": "${objectUuid}", "time": "2021-07-27T00:00:00+02:00"}`;
    for (const message of messages) expect(message.content.toString()).toBe(body);
  });

  it('sends object_uuid in OS2mo’s key order, and a caller’s naive time string as given', async () => {
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange });
    const objectUuid = '5e2a5b2b-8d5e-4c1e-9a53-0b8c2f3d4e5f';
    await app
      .get(MoEventsService)
      .publish('org_unit', 'address', 'update', UUID, { time: '2019-03-24T13:02:15.132025', objectUuid });
    const [message] = await collector.waitFor(1);
    expect(message.content.toString('utf8')).toBe(
      `{"uuid": "${UUID}", "object_uuid": "${objectUuid}", "time": "2019-03-24T13:02:15.132025"}`,
    );
  });

  it('declares the exchange at start as a durable topic exchange', async () => {
    const fresh = uniqueName('declared');
    broker.track(fresh);
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange: fresh });
    const check = async (type: string, durable: boolean) => {
      const channel = await broker.connection.createChannel();
      channel.on('error', () => undefined);
      try {
        await channel.assertExchange(fresh, type, { durable });
        await channel.close();
        return 'same';
      } catch (err) {
        return (err as Error).message.includes('PRECONDITION_FAILED') ? 'different' : (err as Error).message;
      }
    };
    // Re-declaring with the same settings succeeds; any other type or durability is refused.
    expect(await check('topic', true)).toBe('same');
    expect(await check('topic', false)).toBe('different');
    expect(await check('direct', true)).toBe('different');
  });

  it('rejects each bad argument with MoEventValidationError and sends nothing', async () => {
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange });
    const events = app.get(MoEventsService);
    const publish = events.publish.bind(events) as (...args: unknown[]) => Promise<MoPublishResult>;
    const bad: [string, unknown[]][] = [
      ['service', ['employe', 'it', 'create', UUID]],
      ['service', ['#', 'it', 'create', UUID]],
      ['objectType', ['employee', 'it.create', 'create', UUID]],
      ['action', ['employee', 'it', '*', UUID]],
      ['uuid', ['employee', 'it', 'create', 'c390b9a2']],
      ['options.time', ['employee', 'it', 'create', UUID, { time: 'yesterday' }]],
      ['options.time', ['employee', 'it', 'create', UUID, { time: new Date(Number.NaN) }]],
      ['options.objectUuid', ['employee', 'it', 'create', UUID, { objectUuid: 'x' }]],
      ['options.objectUUID', ['employee', 'it', 'create', UUID, { objectUUID: UUID }]],
    ];
    for (const [field, args] of bad) {
      const err = await publish(...args).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MoEventValidationError);
      expect((err as MoEventValidationError).field).toBe(field);
    }
    // A good one after the bad ones shows the queue was listening all along.
    const good = await events.publish('employee', 'it', 'create', UUID);
    await collector.waitFor(1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(collector.messages.map((m) => m.properties.messageId)).toEqual([good.messageId]);
  });

  it('resolves only once the broker has confirmed', async () => {
    proxy = await TcpProxy.start();
    app = await bootApp({ enabled: true, url: proxy.url, exchange });
    proxy.pause();
    let settled = false;
    const publishing = app
      .get(MoEventsService)
      .publish('employee', 'engagement', 'create', UUID)
      .finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(settled).toBe(false);
    proxy.resume();
    await expect(publishing).resolves.toMatchObject({ status: 'confirmed' });
    await collector.waitFor(1);
  });

  it('without a spool, rejects with MoPublishError after the publish timeout when the broker stops answering', async () => {
    proxy = await TcpProxy.start();
    app = await bootApp({
      enabled: true,
      url: proxy.url,
      exchange,
      publishTimeoutMs: 400,
      spoolDir: 'off', // without a spool, an unconfirmed event is an error
    });
    proxy.pause();
    const started = Date.now();
    const err = (await app
      .get(MoEventsService)
      .publish('employee', 'engagement', 'create', UUID)
      .catch((e: unknown) => e)) as MoPublishError;
    const waited = Date.now() - started;
    expect(err).toBeInstanceOf(MoPublishError);
    expect(err.reason).toBe('timeout');
    expect(err.routingKey).toBe('employee.engagement.create');
    expect(err.message).toContain(`amqp://guest:***@127.0.0.1:${proxy.port}`);
    expect(err.message).toContain(err.messageId);
    expect(err.message).toContain('within 400 ms');
    expect(waited).toBeGreaterThanOrEqual(350);
    expect(waited).toBeLessThan(5_000);
    proxy.resume();
  });

  it('without a spool, refuses at once, instead of queueing without bound, when maxInFlight publishes wait', async () => {
    proxy = await TcpProxy.start();
    app = await bootApp({
      enabled: true,
      url: proxy.url,
      exchange,
      maxInFlight: 3,
      publishTimeoutMs: 5_000,
      spoolDir: 'off',
    });
    const events = app.get(MoEventsService);
    proxy.pause();
    const waiting = [1, 2, 3].map(() => events.publish('employee', 'it', 'update', UUID));
    const err = (await events.publish('employee', 'it', 'update', UUID).catch((e: unknown) => e)) as MoPublishError;
    expect(err).toBeInstanceOf(MoPublishError);
    expect(err.reason).toBe('overloaded');
    expect(err.message).toContain('AMQP__MAX_IN_FLIGHT = 3');
    // The three already accepted are not lost: they go through once the broker answers.
    proxy.resume();
    const results = await Promise.all(waiting);
    expect(results.map((r) => r.status)).toEqual(['confirmed', 'confirmed', 'confirmed']);
    await collector.waitFor(3);
  });

  it('sends what was published while the connection was lost once it is back', async () => {
    proxy = await TcpProxy.start();
    app = await bootApp(
      { enabled: true, url: proxy.url, exchange, publishTimeoutMs: 15_000 },
      { logger: new CapturingLogger() },
    );
    const events = app.get(MoEventsService);
    await events.publish('employee', 'it', 'create', UUID);
    proxy.dropConnections();
    // The library reconnects on its own (every 2 s); these wait for it instead of failing.
    const during = await Promise.all([1, 2, 3].map(() => events.publish('employee', 'it', 'update', UUID)));
    expect(during.map((r) => r.status)).toEqual(['confirmed', 'confirmed', 'confirmed']);
    const messages = await collector.waitFor(4);
    expect(messages.map((m) => m.fields.routingKey)).toEqual([
      'employee.it.create',
      'employee.it.update',
      'employee.it.update',
      'employee.it.update',
    ]);
    expect(proxy.connections).toBeGreaterThanOrEqual(2);
  });

  it('recovers when the exchange is deleted under it: declares it again and delivers', async () => {
    const logger = new CapturingLogger();
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { logger });
    await broker.channel.deleteExchange(exchange);
    // The publish closes the channel (404 NOT_FOUND); the message waits for a new one.
    const publishing = app.get(MoEventsService).publish('org_unit', 'role', 'delete', UUID);
    const deadline = Date.now() + 5_000;
    while (!logger.text.includes('NOT_FOUND') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(logger.text).toContain('NOT_FOUND');
    // A queue bound to the exchange again (a second after the 404 the library re-declares it too).
    const fresh = await broker.collect(exchange);
    const result = await publishing;
    expect(result.status).toBe('confirmed');
    const [message] = await fresh.waitFor(1);
    expect(message.properties.messageId).toBe(result.messageId);
  });

  it('lets confirms in flight arrive before closing; after, spools (or, without a spool, refuses)', async () => {
    const spoolDir = testSpoolDir();
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir });
    const events = app.get(MoEventsService);
    const inFlight = Array.from({ length: 50 }, () => events.publish('employee', 'leave', 'create', UUID));
    await app.close();
    app = undefined;
    const results = await Promise.all(inFlight);
    expect(results.every((r) => r.status === 'confirmed')).toBe(true);
    await collector.waitFor(50);
    const late = await events.publish('employee', 'leave', 'create', UUID);
    expect(late.status).toBe('spooled'); // on disk, sent at the next start

    app = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir: 'off' });
    const unspooled = app.get(MoEventsService);
    await app.close();
    app = undefined;
    const refused = (await unspooled
      .publish('employee', 'leave', 'create', UUID)
      .catch((e: unknown) => e)) as MoPublishError;
    expect(refused).toBeInstanceOf(MoPublishError);
    expect(refused.reason).toBe('closed');
  });

  it('shares its connection with the app’s own @RabbitSubscribe handlers and AmqpConnection', async () => {
    const queue = uniqueName('app-handler');
    const received: unknown[] = [];

    @Injectable()
    class AppConsumer {
      constructor(readonly amqpConnection: AmqpConnection) {}

      @RabbitSubscribe({ exchange, routingKey: 'employee.*.*', queue, queueOptions: { autoDelete: true } })
      handle(body: unknown, message: amqp.ConsumeMessage) {
        received.push([message.fields.routingKey, body]);
      }
    }

    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [AppConsumer] });
    expect(app.get(AppConsumer).amqpConnection).toBe(app.get(AmqpConnection));
    await app
      .get(MoEventsService)
      .publish('employee', 'manager', 'delete', UUID, { time: '2021-07-27T00:00:00+02:00' });
    await app.get(MoEventsService).publish('org_unit', 'manager', 'delete', UUID);
    await collector.waitFor(2);
    const deadline = Date.now() + 5_000;
    while (received.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(received).toEqual([['employee.manager.delete', { uuid: UUID, time: '2021-07-27T00:00:00+02:00' }]]);
  });
});
