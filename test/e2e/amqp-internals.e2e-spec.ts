import { AmqpConnection, RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import * as amqp from 'amqplib';
import type * as net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import {
  batchSocketWrites,
  boundClose,
  cutSocket,
  handlersInProgress,
  internalsMissing,
  withdrawConfirm,
} from '../../lib/runtime/amqp-internals';
import { bootApp } from '../support/app';
import { BROKER_URL, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { until } from '../support/until';

// What lib/runtime/amqp-internals.ts relies on, against the installed golevelup,
// amqp-connection-manager and amqplib on a real broker: an upgrade that breaks
// one of them fails here, not in a production shutdown.

const exchange = uniqueName('internals');
const queue = uniqueName('internals.q');
let release: () => void = () => undefined;
let entered = 0;

@Injectable()
class SlowHandler {
  @RabbitSubscribe({ exchange, routingKey: '#', queue, queueOptions: { autoDelete: true } })
  async handle(): Promise<void> {
    entered++;
    await new Promise<void>((resolve) => (release = resolve));
  }
}

describe('the golevelup, amqp-connection-manager and amqplib internals this package relies on', () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;
  let proxy: TcpProxy | undefined;

  beforeAll(async () => {
    broker = await TestBroker.connect();
    app = await bootApp({ enabled: true, exchange, spoolDir: 'off' }, { providers: [SlowHandler] });
  });

  afterAll(async () => {
    release();
    await app?.close();
    await proxy?.close();
    await broker.channel.deleteExchange(exchange).catch(() => undefined);
    await broker.close();
  });

  it('are all there in this installation', () => {
    expect(internalsMissing(app!.get(AmqpConnection))).toEqual([]);
  });

  it('names what is missing when they are not', () => {
    const stripped = { close: undefined } as unknown as AmqpConnection;
    expect(internalsMissing(stripped)).toEqual([
      '@golevelup/nestjs-rabbitmq AmqpConnection.outstandingMessageProcessing (a Set)',
      '@golevelup/nestjs-rabbitmq AmqpConnection.close()',
    ]);
    expect(handlersInProgress(stripped)).toEqual([]);
  });

  it('golevelup: the handler calls in progress are seen, and gone once they finish', async () => {
    const amqpConnection = app!.get(AmqpConnection);
    expect(handlersInProgress(amqpConnection)).toHaveLength(0);
    broker.channel.publish(exchange, 'employee.it.create', Buffer.from('{}'));
    await until(() => entered === 1, 'the handler to start');
    const inProgress = handlersInProgress(amqpConnection);
    expect(inProgress).toHaveLength(1);
    release();
    await Promise.all(inProgress);
    await until(() => handlersInProgress(amqpConnection).length === 0, 'the handler to be forgotten');
  });

  it('amqp-connection-manager and amqplib: cutting the socket drops the connection, which comes back', async () => {
    const manager = app!.get(AmqpConnection).managedConnection;
    const disconnected = new Promise((resolve) => manager.once('disconnect', resolve));
    const reconnected = new Promise((resolve) => manager.once('connect', resolve));
    expect(cutSocket(manager)).toBe(true);
    // At once, not at the next missed heartbeat (15 s here): the cut is an error to amqplib.
    await expect(
      Promise.race([disconnected.then(() => 'disconnected'), delay(5_000, 'still connected')]),
    ).resolves.toBe('disconnected');
    await reconnected;
    expect(manager.isConnected()).toBe(true);
  });

  it('golevelup: a close the broker never answers is cut after the bound', async () => {
    proxy = await TcpProxy.start();
    const connection = new AmqpConnection({ uri: proxy.url, connectionInitOptions: { wait: true, timeout: 5_000 } });
    await connection.init();
    const socket = (connection.managedConnection.connection as unknown as { connection: { stream: net.Socket } })
      .connection.stream;
    const cuts: number[] = [];
    boundClose(connection, 300, (ms) => cuts.push(ms));
    proxy.pause(); // connected, but the broker no longer answers
    const started = Date.now();
    await connection.close();
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(cuts).toEqual([300]);
    expect(socket.destroyed).toBe(true);
  });

  it('amqplib: what one tick publishes goes to the socket in one write, once batched', async () => {
    const connection = new AmqpConnection({ uri: BROKER_URL, connectionInitOptions: { wait: true, timeout: 5_000 } });
    await connection.init();
    try {
      const manager = connection.managedConnection;
      const model = manager.connection as unknown as amqp.ChannelModel & { connection: { stream: net.Socket } };
      // What reaches libuv: _write for one chunk, _writev for several at once (a corked socket).
      const socket = model.connection.stream as unknown as Record<'_write' | '_writev', (...a: unknown[]) => void>;
      const channel = await model.createConfirmChannel();
      const burst = async () => {
        const write = jest.spyOn(socket, '_write');
        const writev = jest.spyOn(socket, '_writev');
        for (let i = 0; i < 50; i++) channel.publish('', 'nowhere', Buffer.from(`m${i}`));
        await channel.waitForConfirms();
        const calls = { write: write.mock.calls.length, writev: writev.mock.calls.length };
        write.mockRestore();
        writev.mockRestore();
        return calls;
      };
      // amqplib alone: one write per message.
      expect((await burst()).write).toBeGreaterThanOrEqual(50);
      expect(batchSocketWrites(manager)).toBe(true);
      expect(batchSocketWrites(manager)).toBe(true); // once per connection, however often asked
      const batched = await burst();
      expect(batched.writev).toBeGreaterThan(0);
      expect(batched.write + batched.writev).toBeLessThan(5);
    } finally {
      await connection.close();
    }
  });

  it('amqplib: a confirm callback left by a message it could not encode is taken back', async () => {
    const connection = await amqp.connect(BROKER_URL);
    try {
      const channel = await connection.createConfirmChannel();
      const unconfirmed = (channel as unknown as { unconfirmed: unknown[] }).unconfirmed;
      const callback = jest.fn();
      expect(() => channel.publish('', 'nowhere', Buffer.from('x'), { messageId: 'x'.repeat(300) }, callback)).toThrow(
        TypeError,
      );
      expect(unconfirmed).toHaveLength(1);
      withdrawConfirm(channel, callback);
      expect(unconfirmed).toHaveLength(0);
      // The next message's confirm is its own.
      const next = jest.fn();
      channel.publish('', 'nowhere', Buffer.from('y'), {}, next);
      await channel.waitForConfirms();
      expect(next).toHaveBeenCalledTimes(1);
      expect(callback).not.toHaveBeenCalled();
    } finally {
      await connection.close();
    }
  });
});
