// The publishers a scenario compares. Each sends the same routing key, the same
// body bytes and the contract's properties (persistent, content type, a fresh
// message id, timestamp) with publisher confirms, to the same exchange.
require('reflect-metadata');
const { AmqpConnection, RabbitSubscribe } = require('@golevelup/nestjs-rabbitmq');
const { Injectable, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const amqp = require('amqplib');
const { randomUUID } = require('node:crypto');
const { MoAmqpModule, MoEvent, MoEventSubscribe, MoEventsService } = require('../..');

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const DATE = new Date('2019-03-24T13:02:15.132Z');
const BODY = Buffer.from(`{"uuid": "${UUID}", "time": "2019-03-24T13:02:15.132000+00:00"}`);
const ROUTING_KEY = 'employee.engagement.create';

const silent = { log() {}, error() {}, warn() {}, debug() {}, verbose() {} };

/** The first URL of a comma-separated list (a cluster's): amqplib takes one. */
const firstUrl = (url) => url.split(',')[0].trim();

function contractProperties() {
  return {
    persistent: true,
    contentType: 'application/json',
    messageId: randomUUID(),
    timestamp: Math.floor(Date.now() / 1000),
  };
}

/** amqplib on a confirm channel, by hand, of a body built once: the floor any library adds cost to. */
async function rawAmqplib(url, exchange) {
  const connection = await amqp.connect(firstUrl(url));
  const channel = await connection.createConfirmChannel();
  return {
    name: 'raw amqplib',
    publish: () =>
      new Promise((resolve, reject) =>
        channel.publish(exchange, ROUTING_KEY, BODY, contractProperties(), (err) => (err ? reject(err) : resolve())),
      ),
    close: () => connection.close(),
  };
}

/**
 * amqplib on a confirm channel, by hand, as an application would send real
 * events: each body built from its uuid and Date (the contract's JSON text, the
 * time as OS2mo's isoformat, UTC, microseconds), with a fresh message id and
 * timestamp. The fair floor for this package's publish, which must do the same.
 */
async function rawAmqplibPerMessage(url, exchange) {
  const connection = await amqp.connect(firstUrl(url));
  const channel = await connection.createConfirmChannel();
  const message = (uuid, time) =>
    Buffer.from(`{"uuid": "${uuid}", "time": "${time.toISOString().slice(0, 23)}000+00:00"}`);
  return {
    name: 'raw amqplib, body per message',
    publish: () =>
      new Promise((resolve, reject) =>
        channel.publish(exchange, ROUTING_KEY, message(UUID, DATE), contractProperties(), (err) =>
          err ? reject(err) : resolve(),
        ),
      ),
    close: () => connection.close(),
  };
}

/** golevelup's AmqpConnection.publish with persistent messages, as its users would call it. */
async function golevelup(url, exchange) {
  const connection = new AmqpConnection({ uri: url, logger: silent, connectionInitOptions: { wait: true } });
  await connection.init();
  return {
    name: 'golevelup',
    publish: () => connection.publish(exchange, ROUTING_KEY, BODY, contractProperties()),
    close: () => connection.close(),
  };
}

class EngagementService {
  async decorated() {
    return { uuid: UUID };
  }

  async handWritten() {
    const engagement = { uuid: UUID };
    await this.events.publish('employee', 'engagement', 'create', engagement.uuid, { time: DATE });
    return engagement;
  }
}
MoEvent('employee', 'engagement', 'create', { time: () => DATE })(
  EngagementService.prototype,
  'decorated',
  Object.getOwnPropertyDescriptor(EngagementService.prototype, 'decorated'),
);
Injectable()(EngagementService);

/** This package: a Nest app with MoAmqpModule; `publish`, a @MoEvent method, and the same method by hand. */
async function moAmqp(url, exchange) {
  class BenchModule {}
  Module({
    imports: [MoAmqpModule.forRoot({ enabled: true, url, exchange })],
    providers: [EngagementService],
  })(BenchModule);
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false, abortOnError: false });
  const events = app.get(MoEventsService);
  const service = app.get(EngagementService);
  service.events = events;
  return {
    name: 'mo-amqp',
    publish: () => events.publish('employee', 'engagement', 'create', UUID, { time: DATE }),
    decorated: { name: '@MoEvent method', publish: () => service.decorated() },
    handWritten: { name: 'method + publish()', publish: () => service.handWritten() },
    close: () => app.close(),
  };
}

/**
 * Two consumers of the same messages in one app: `@MoEventSubscribe` (parses and
 * validates each message into a typed event) and a plain `@RabbitSubscribe`
 * (golevelup's JSON.parse only), both at the default prefetch of 10, on queues of one type. Each counts
 * what it handled; `expect(n)` resolves with the handling rate once n have arrived.
 */
async function consumers(url, exchange, moQueue, plainQueue, queueType = 'classic') {
  const counters = new Map();
  const counter = (name) => {
    const c = { count: 0, first: 0n, last: 0n, target: Infinity, done: undefined };
    counters.set(name, c);
    return () => {
      const now = process.hrtime.bigint();
      if (c.count === 0) c.first = now;
      c.last = now;
      if (++c.count === c.target) c.done();
    };
  };
  const onMo = counter('@MoEventSubscribe');
  const onPlain = counter('@RabbitSubscribe');

  class Consumers {
    async typed(event) {
      if (typeof event.uuid === 'string') onMo();
    }

    async plain(body) {
      if (typeof body.uuid === 'string') onPlain();
    }
  }
  const method = (name) => Object.getOwnPropertyDescriptor(Consumers.prototype, name);
  MoEventSubscribe({ queue: moQueue, queueType })(Consumers.prototype, 'typed', method('typed'));
  const queueOptions = queueType === 'quorum' ? { durable: true, arguments: { 'x-queue-type': 'quorum' } } : {};
  RabbitSubscribe({ exchange, routingKey: '#', queue: plainQueue, queueOptions })(
    Consumers.prototype,
    'plain',
    method('plain'),
  );
  Injectable()(Consumers);

  class ConsumeModule {}
  Module({ imports: [MoAmqpModule.forRoot({ enabled: true, url, exchange })], providers: [Consumers] })(ConsumeModule);
  const app = await NestFactory.createApplicationContext(ConsumeModule, { logger: false, abortOnError: false });
  const amqpConnection = app.get(AmqpConnection);
  // Which consumer tag belongs to which queue, so each can be paused while its queue fills.
  const tagOf = (queue) =>
    amqpConnection.consumerTags.find((tag) => amqpConnection.getConsumer(tag).msgOptions.queue === queue);

  const contender = (name, queue) => {
    let tag = tagOf(queue);
    return {
      name,
      queue,
      pause: async () => {
        await amqpConnection.cancelConsumer(tag);
      },
      /** Consumes `n` waiting messages; resolves with messages per second between the first and the last. */
      consume: async (n) => {
        const c = counters.get(name);
        Object.assign(c, { count: 0, target: n });
        const finished = new Promise((resolve) => (c.done = resolve));
        tag = await amqpConnection.resumeConsumer(tag);
        await finished;
        return { 'msg/s': (n - 1) / (Number(c.last - c.first) / 1e9) };
      },
    };
  };
  return {
    mo: contender('@MoEventSubscribe', moQueue),
    plain: contender('@RabbitSubscribe', plainQueue),
    close: () => app.close(),
  };
}

module.exports = { rawAmqplib, rawAmqplibPerMessage, golevelup, moAmqp, consumers, BODY, ROUTING_KEY };
