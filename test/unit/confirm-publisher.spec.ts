import type { ConfirmChannel } from 'amqplib';
import { ConfirmPublisher, PublishFailure } from '../../lib/runtime/confirm-publisher';
import { FakeBroker, FakeChannel, FakeConnection, flush } from '../support/fake-channel';

/** The routing keys written on a channel and not confirmed yet, in order. */
const written = (channel: FakeChannel) => channel.unconfirmed.map((u) => u.published.routingKey);

function setup(timeoutMs = 1_000) {
  const broker = new FakeBroker();
  broker.confirms = 'manual'; // the test confirms or fails each write
  const errors: unknown[] = [];
  const publisher = new ConfirmPublisher(broker.manager.asManager, {
    timeoutMs,
    setup: async (channel: ConfirmChannel) => channel.assertExchange('x', 'topic', { durable: true }),
    declareExchange: async (channel: ConfirmChannel, name: string) => {
      await channel.assertExchange(name, 'topic', { durable: true });
    },
    onError: (err) => errors.push(err),
  });
  const connect = async (): Promise<FakeConnection> => {
    const model = broker.connect();
    await publisher.whenReady();
    return model;
  };
  const send = (key: string) => publisher.publish('x', key, Buffer.from(key), {});
  return { broker, publisher, errors, connect, send };
}

afterEach(() => {
  jest.useRealTimers();
});

describe('ConfirmPublisher', () => {
  it('holds messages while there is no channel, then writes them in order', async () => {
    const { connect, send } = setup();
    const settled = ['a', 'b', 'c'].map(send);
    const model = await connect();
    expect(written(model.channels[0])).toEqual(['a', 'b', 'c']);
    model.channels[0].confirmPublishes();
    await expect(Promise.all(settled)).resolves.toEqual([undefined, undefined, undefined]);
  });

  it('writes everything unconfirmed again, in order, on the next connection after one is lost', async () => {
    const { connect, send, publisher } = setup();
    const first = await connect();
    const settled = ['a', 'b'].map(send);
    first.channels[0].confirmPublishes(1); // 'a' confirmed before the connection dies
    first.drop();
    const c = send('c'); // published during the outage
    const second = await connect();
    expect(written(second.channels[0])).toEqual(['b', 'c']);
    second.channels[0].confirmPublishes();
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
    expect(written(model.channels[1])).toEqual(['a']);
    model.channels[1].confirmPublishes();
    await expect(settled).resolves.toBeUndefined();
  });

  it('rejects with the reason when the broker nacks', async () => {
    const { connect, send } = setup();
    const model = await connect();
    const settled = send('a');
    model.channels[0].failConfirms(new Error('message nacked'));
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
    model.channels[0].unconfirmed[0].cb(null); // the late confirm of 'a' changes nothing
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
    expect(written(model.channels[0])).toEqual(['fresh']);
    model.channels[0].confirmPublishes();
    await fresh;
  });

  it('stops writing when the channel buffer is full and resumes on drain', async () => {
    const { connect, send } = setup();
    const model = await connect();
    const channel = model.channels[0];
    channel.roomLeft = 2;
    const settled = ['a', 'b', 'c', 'd'].map(send);
    expect(written(channel)).toEqual(['a', 'b']);
    channel.roomLeft = Number.POSITIVE_INFINITY;
    channel.emit('drain');
    expect(written(channel)).toEqual(['a', 'b', 'c', 'd']);
    channel.confirmPublishes();
    await Promise.all(settled);
  });

  it('tells about a failed set-up and keeps the messages for the next channel', async () => {
    const { broker, publisher, errors, send } = setup();
    broker.onChannel = (channel) => {
      broker.onChannel = () => undefined; // the first channel only
      channel.assertExchange = async () => {
        throw new Error('PRECONDITION_FAILED');
      };
    };
    const settled = send('a');
    broker.connect();
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
    model.channels[0].confirmPublishes();
    await flush();
    expect(idle).toBe(true);
  });
});
