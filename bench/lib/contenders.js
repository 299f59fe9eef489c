// The publishers a scenario compares. Each sends the same routing key, the same
// body bytes and the contract's properties (persistent, content type, a fresh
// message id, timestamp) with publisher confirms, to the same exchange.
require('reflect-metadata');
const { AmqpConnection } = require('@golevelup/nestjs-rabbitmq');
const { Injectable, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const amqp = require('amqplib');
const { randomUUID } = require('node:crypto');
const { MoAmqpModule, MoEvent, MoEventsService } = require('../..');

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const DATE = new Date('2019-03-24T13:02:15.132Z');
const BODY = Buffer.from(`{"uuid": "${UUID}", "time": "2019-03-24T13:02:15.132000+00:00"}`);
const ROUTING_KEY = 'employee.engagement.create';

const silent = { log() {}, error() {}, warn() {}, debug() {}, verbose() {} };

function contractProperties() {
  return {
    persistent: true,
    contentType: 'application/json',
    messageId: randomUUID(),
    timestamp: Math.floor(Date.now() / 1000),
  };
}

/** amqplib on a confirm channel, by hand: the floor any library adds cost to. */
async function rawAmqplib(url, exchange) {
  const connection = await amqp.connect(url);
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

module.exports = { rawAmqplib, golevelup, moAmqp, BODY, ROUTING_KEY };
