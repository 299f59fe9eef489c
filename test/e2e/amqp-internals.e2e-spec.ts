import { AmqpConnection, RabbitMQModule, RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import * as amqp from 'amqplib';
import { readFileSync } from 'node:fs';
import type * as net from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  batchSocketWrites,
  boundClose,
  confirmsHeld,
  cutSocket,
  deferGolevelupConsumers,
  handlersInProgress,
  internalsMissing,
  letGolevelupRegisterHandlers,
  reclaimGolevelupConnection,
  withdrawConfirm,
} from '../../lib/runtime/amqp-internals';
import { bootApp } from '../support/app';
import { BROKER_URL, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { until } from '../support/until';

// What lib/runtime/amqp-internals.ts relies on, against the installed golevelup,
// amqp-connection-manager and amqplib on a real broker: an upgrade that breaks
// one of them fails here, not in a production shutdown. Where amqplib versions
// differ (0.10, and 2.3 put in by an npm override), each test asserts what the
// installed one does.

/** The installed amqplib's version, read from disk: amqplib 2 does not export its package.json. */
function installedAmqplib(): string {
  const main = require.resolve('amqplib');
  for (let dir = dirname(main); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (json.name === 'amqplib' && json.version) return json.version;
    } catch {
      // no package.json here: one level up
    }
  }
  throw new Error(`no package.json of amqplib above ${main}`);
}

const AMQPLIB = installedAmqplib();
/** Before 1.0.4 amqplib queues a confirm callback before it encodes the message (its issue #842). */
const LEAVES_CALLBACK_OF_UNENCODABLE = /^0\.|^1\.0\.[0-3]$/.test(AMQPLIB);

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

  it('golevelup: the flag that lets one application per process register handlers is there, and cleared', () => {
    // An application is up (this spec's), so golevelup has set it: without the clearing a
    // second application would not consume (test/e2e/two-apps.e2e-spec.ts shows it does).
    expect((RabbitMQModule as unknown as { bootstrapped: unknown }).bootstrapped).toBe(true);
    expect(letGolevelupRegisterHandlers()).toBe(true);
    expect((RabbitMQModule as unknown as { bootstrapped: unknown }).bootstrapped).toBe(false);
    // And the static map of connections golevelup closes at shutdown, by name.
    expect(reclaimGolevelupConnection(app!.get(AmqpConnection))).toBe(true);
  });

  it('names what is missing when they are not', () => {
    const stripped = { close: undefined } as unknown as AmqpConnection;
    expect(internalsMissing(stripped)).toEqual([
      '@golevelup/nestjs-rabbitmq AmqpConnection.outstandingMessageProcessing (a Set)',
      '@golevelup/nestjs-rabbitmq AmqpConnection.close()',
    ]);
    expect(handlersInProgress(stripped)).toEqual([]);
  });

  it('golevelup: a consumer call before the broker answers is deferred, made once the gate opens, and put back', async () => {
    const amqpConnection = app!.get(AmqpConnection);
    const prototypeCall = Object.getPrototypeOf(amqpConnection).createSubscriber;
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    expect(deferGolevelupConsumers(amqpConnection, gate)).toBe(true);
    // An exchange of its own: this spec's SlowHandler takes everything on the shared one.
    const own = uniqueName('deferred');
    await broker.channel.assertExchange(own, 'topic', { durable: false });
    broker.track(own);
    const queue = uniqueName('deferred');
    broker.trackQueue(queue);
    const got: unknown[] = [];
    // Durable: RabbitMQ 4.3 refuses a transient queue that is not exclusive (a deprecated feature).
    const options = { exchange: own, routingKey: '#', queue, queueOptions: { durable: true } };
    // Resolves at once, where golevelup's own would wait for the set-up on an open channel.
    await expect(
      amqpConnection.createSubscriber(async (message) => void got.push(message), options, 'deferred'),
    ).resolves.toEqual({ consumerTag: '' });
    // A channel of its own for each look: a queue not there closes the channel that asked.
    const consumers = async () => {
      const channel = await broker.connection.createChannel();
      channel.on('error', () => undefined);
      const found = await channel.checkQueue(queue).catch(() => undefined);
      await channel.close().catch(() => undefined);
      return found?.consumerCount;
    };
    await delay(300);
    expect(await consumers()).toBeUndefined(); // not even declared: nothing was set up
    open();
    await until(async () => (await consumers()) === 1, 'the deferred consumer to attach');
    expect(amqpConnection.createSubscriber).toBe(prototypeCall);
    broker.channel.publish(own, 'deferred.it', Buffer.from('{"a": 1}'));
    await until(() => got.length === 1, 'the deferred consumer to get a message');
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

  it(`amqplib ${AMQPLIB} is one of the versions these reliances were checked against (0.10, 2.3)`, () => {
    // A new amqplib: check each reliance in lib/runtime/amqp-internals.ts against it, then add it here.
    expect(AMQPLIB).toMatch(/^0\.10\.\d+$|^2\.3\.\d+$/);
  });

  describe(`amqplib ${AMQPLIB}: the confirm callback of a message it could not encode`, () => {
    let connection: amqp.ChannelModel;
    let channel: amqp.ConfirmChannel;
    let closed: jest.Mock;
    const unconfirmed = () => (channel as unknown as { unconfirmed: unknown[] }).unconfirmed;
    const unencodable = { messageId: 'x'.repeat(300) }; // a short string holds at most 255 bytes

    beforeEach(async () => {
      connection = await amqp.connect(BROKER_URL);
      channel = await connection.createConfirmChannel();
      closed = jest.fn();
      channel.on('close', closed);
    });

    afterEach(async () => {
      await connection.close().catch(() => undefined);
    });

    /** Publishes three messages whose confirms are still to come: what a busy channel holds. */
    function inFlight(): jest.Mock[] {
      const callbacks = [jest.fn(), jest.fn(), jest.fn()];
      callbacks.forEach((cb, i) => channel.publish('', 'nowhere', Buffer.from(`e${i}`), {}, cb));
      return callbacks;
    }

    type Confirm = NonNullable<Parameters<amqp.ConfirmChannel['publish']>[4]>;
    it.each([
      ['as given', (cb: Confirm): Confirm => cb],
      // What @opentelemetry/instrumentation-amqplib hands amqplib instead of the caller's callback.
      [
        'wrapped, as an instrumentation passes it',
        (cb: Confirm): Confirm =>
          (err, ok) =>
            cb(err, ok),
      ],
    ])(
      LEAVES_CALLBACK_OF_UNENCODABLE
        ? 'is left behind (%s) and taken back; the channel stays open, every later confirm its own'
        : 'is not left behind (%s): nothing is taken back; the channel stays open, every later confirm its own',
      async (_how, wrap) => {
        const publish = channel.publish.bind(channel);
        channel.publish = (exchange, routingKey, content, options, cb) =>
          publish(exchange, routingKey, content, options, cb && wrap(cb));
        const earlier = inFlight();
        const held = confirmsHeld(channel);
        expect(held).toBe(3);
        const failed = jest.fn();
        expect(() => channel.publish('', 'nowhere', Buffer.from('x'), unencodable, failed)).toThrow(TypeError);
        expect(unconfirmed()).toHaveLength(LEAVES_CALLBACK_OF_UNENCODABLE ? 4 : 3);
        expect(withdrawConfirm(channel, held)).toBe(LEAVES_CALLBACK_OF_UNENCODABLE ? 'withdrawn' : 'none-left');
        expect(unconfirmed()).toHaveLength(3);
        const next = jest.fn();
        channel.publish('', 'nowhere', Buffer.from('y'), {}, next);
        await channel.waitForConfirms();
        for (const cb of [...earlier, next]) expect(cb.mock.calls).toEqual([[null]]);
        expect(failed).not.toHaveBeenCalled();
        expect(closed).not.toHaveBeenCalled();
      },
    );

    it(
      LEAVES_CALLBACK_OF_UNENCODABLE
        ? 'left where it is, takes the next message’s confirm (why withdrawConfirm exists)'
        : 'needs no withdrawal: the next message’s confirm is its own without one',
      async () => {
        const failed = jest.fn();
        expect(() => channel.publish('', 'nowhere', Buffer.from('x'), unencodable, failed)).toThrow(TypeError);
        const next = jest.fn();
        channel.publish('', 'nowhere', Buffer.from('y'), {}, next);
        await until(() => failed.mock.calls.length + next.mock.calls.length > 0, 'a confirm');
        await delay(200); // a second confirm, were there one, would come by now
        expect(failed.mock.calls).toEqual(LEAVES_CALLBACK_OF_UNENCODABLE ? [[null]] : []);
        expect(next.mock.calls).toEqual(LEAVES_CALLBACK_OF_UNENCODABLE ? [] : [[null]]);
      },
    );

    it('closes the channel instead where the bookkeeping is not what it knows', async () => {
      const earlier = inFlight();
      // Two callbacks more than held before the publish, and no count at all.
      expect(withdrawConfirm(channel, 1)).toBe('channel-closed');
      await until(() => closed.mock.calls.length === 1, 'the channel to close');
      // Closed, the channel failed what it held: they are written again on the next one.
      for (const cb of earlier) expect(cb).toHaveBeenCalledTimes(1);
      const stranger = { close: jest.fn(async () => undefined) } as unknown as amqp.ConfirmChannel;
      expect(confirmsHeld(stranger)).toBeUndefined();
      expect(withdrawConfirm(stranger, confirmsHeld(stranger))).toBe('channel-closed');
      expect(stranger.close).toHaveBeenCalledTimes(1);
    });
  });
});
