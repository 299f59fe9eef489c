import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { EventEmitter } from 'node:events';
import { ConfirmPublisher, PublishFailure } from '../../lib/runtime/confirm-publisher';

/** An amqplib confirm channel that records writes; the test confirms or fails them. */
class FakeChannel extends EventEmitter {
  readonly written: { routingKey: string; cb: (err: unknown) => void }[] = [];
  roomLeft = Number.POSITIVE_INFINITY;
  closed = false;

  publish(_exchange: string, routingKey: string, _content: Buffer, _options: unknown, cb: (err: unknown) => void) {
    if (this.closed) throw new Error('Channel closed');
    this.written.push({ routingKey, cb });
    return --this.roomLeft > 0;
  }

  async assertExchange() {}

  async close() {
    this.serverClose();
  }

  /** What amqplib does when the broker closes the channel: unconfirmed callbacks fail, then 'close'. */
  serverClose() {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.written.splice(0)) w.cb(new Error('channel closed'));
    this.emit('close');
  }

  confirmAll() {
    for (const w of this.written.splice(0)) w.cb(null);
  }
}

class FakeModel {
  readonly channels: FakeChannel[] = [];
  async createConfirmChannel() {
    const channel = new FakeChannel();
    this.channels.push(channel);
    return channel;
  }
}

class FakeManager extends EventEmitter {
  connection: FakeModel | undefined;
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

function setup(timeoutMs = 1_000) {
  const manager = new FakeManager();
  const errors: unknown[] = [];
  const publisher = new ConfirmPublisher(manager as unknown as AmqpConnectionManager, {
    timeoutMs,
    setup: async (channel: ConfirmChannel) => channel.assertExchange('x', 'topic', { durable: true }),
    declareExchange: async (channel: ConfirmChannel, name: string) => {
      await channel.assertExchange(name, 'topic', { durable: true });
    },
    onError: (err) => errors.push(err),
  });
  const connect = async (model = new FakeModel()) => {
    manager.connection = model;
    manager.emit('connect', { connection: model as unknown as ChannelModel });
    await publisher.whenReady();
    return model;
  };
  const send = (key: string) => publisher.publish('x', key, Buffer.from(key), {});
  return { manager, publisher, errors, connect, send };
}

afterEach(() => {
  jest.useRealTimers();
});

describe('ConfirmPublisher', () => {
  it('holds messages while there is no channel, then writes them in order', async () => {
    const { connect, send } = setup();
    const settled = ['a', 'b', 'c'].map(send);
    const model = await connect();
    expect(model.channels[0].written.map((w) => w.routingKey)).toEqual(['a', 'b', 'c']);
    model.channels[0].confirmAll();
    await expect(Promise.all(settled)).resolves.toEqual([undefined, undefined, undefined]);
  });

  it('writes everything unconfirmed again, in order, on the next connection after one is lost', async () => {
    const { manager, connect, send, publisher } = setup();
    const first = await connect();
    const settled = ['a', 'b'].map(send);
    first.channels[0].written[0].cb(null); // 'a' confirmed before the connection dies
    manager.connection = undefined;
    first.channels[0].serverClose();
    const c = send('c'); // published during the outage
    const second = await connect();
    expect(second.channels[0].written.map((w) => w.routingKey)).toEqual(['b', 'c']);
    second.channels[0].confirmAll();
    await Promise.all([...settled, c]);
    expect(publisher.size).toBe(0);
  });

  it('reopens a channel the broker closed while the connection stayed up', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const { connect, send } = setup(60_000);
    const model = await connect();
    const settled = send('a');
    model.channels[0].serverClose(); // e.g. 404: the exchange was deleted
    expect(model.channels).toHaveLength(1);
    jest.advanceTimersByTime(1_000);
    await flush();
    expect(model.channels).toHaveLength(2);
    expect(model.channels[1].written.map((w) => w.routingKey)).toEqual(['a']);
    model.channels[1].confirmAll();
    await expect(settled).resolves.toBeUndefined();
  });

  it('rejects with the reason when the broker nacks', async () => {
    const { connect, send } = setup();
    const model = await connect();
    const settled = send('a');
    model.channels[0].written[0].cb(new Error('message nacked'));
    const failure = (await settled.catch((e: unknown) => e)) as PublishFailure;
    expect(failure).toBeInstanceOf(PublishFailure);
    expect(failure.reason).toBe('rejected');
    expect((failure.cause as Error).message).toBe('message nacked');
  });

  it('times each message out after the timeout with one timer, and ignores a late confirm', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const { connect, send, publisher } = setup(1_000);
    const model = await connect();
    const first = send('a').catch((e: PublishFailure) => e.reason);
    jest.advanceTimersByTime(500);
    const second = send('b').catch((e: PublishFailure) => e.reason);
    jest.advanceTimersByTime(500);
    expect(await first).toBe('timeout');
    expect(publisher.size).toBe(1);
    model.channels[0].written[0].cb(null); // the late confirm of 'a' changes nothing
    jest.advanceTimersByTime(500);
    expect(await second).toBe('timeout');
    expect(publisher.size).toBe(0);
  });

  it('drops expired messages from its queue during an outage, so memory holds only the unsettled', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const { send, publisher, connect } = setup(1_000);
    for (let i = 0; i < 1_000; i++) send(`old-${i}`).catch(() => undefined);
    jest.advanceTimersByTime(1_000);
    const fresh = send('fresh');
    expect(publisher.size).toBe(1);
    expect((publisher as unknown as { queue: unknown[]; head: number }).queue.length).toBe(1);
    const model = await connect();
    expect(model.channels[0].written.map((w) => w.routingKey)).toEqual(['fresh']);
    model.channels[0].confirmAll();
    await fresh;
  });

  it('stops writing when the channel buffer is full and resumes on drain', async () => {
    const { connect, send } = setup();
    const model = await connect();
    const channel = model.channels[0];
    channel.roomLeft = 2;
    const settled = ['a', 'b', 'c', 'd'].map(send);
    expect(channel.written.map((w) => w.routingKey)).toEqual(['a', 'b']);
    channel.roomLeft = Number.POSITIVE_INFINITY;
    channel.emit('drain');
    expect(channel.written.map((w) => w.routingKey)).toEqual(['a', 'b', 'c', 'd']);
    channel.confirmAll();
    await Promise.all(settled);
  });

  it('tells about a failed set-up and keeps the messages for the next channel', async () => {
    const { manager, publisher, errors, send } = setup();
    const model = new FakeModel();
    jest.spyOn(model, 'createConfirmChannel').mockImplementationOnce(async () => {
      const channel = new FakeChannel();
      channel.assertExchange = async () => {
        throw new Error('PRECONDITION_FAILED');
      };
      return channel;
    });
    const settled = send('a');
    manager.connection = model;
    manager.emit('connect', { connection: model });
    await flush();
    expect(errors.map((e) => (e as Error).message)).toEqual(['PRECONDITION_FAILED']);
    expect(publisher.size).toBe(1);
    await publisher.close();
    await expect(settled).rejects.toMatchObject({ reason: 'closed' });
  });

  it('rejects everything unsettled with closed, and refuses new messages, after close()', async () => {
    const { connect, send, publisher } = setup();
    await connect();
    const settled = send('a');
    await publisher.close();
    await expect(settled).rejects.toMatchObject({ reason: 'closed' });
    await expect(send('b')).rejects.toMatchObject({ reason: 'closed' });
  });

  it('resolves whenIdle once the last message settles', async () => {
    const { connect, send, publisher } = setup();
    const model = await connect();
    send('a');
    let idle = false;
    void publisher.whenIdle().then(() => (idle = true));
    await flush();
    expect(idle).toBe(false);
    model.channels[0].confirmAll();
    await flush();
    expect(idle).toBe(true);
  });
});
