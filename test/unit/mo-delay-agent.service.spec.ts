import type { AmqpConnection } from '@golevelup/nestjs-rabbitmq';
import { Logger } from '@nestjs/common';
import type { Options } from 'amqplib';
import type { ResolvedMoAmqpOptions } from '../../lib/config/mo-amqp-options.interface';
import { BIT_HEADER_PREFIX, DUE_HEADER, delayTopology } from '../../lib/delay/delay-ladder';
import { ladderProperties } from '../../lib/delay/ladder-headers';
import { MoDelayAgent } from '../../lib/delay/mo-delay-agent.service';
import type { ResolvedMoDelayAgentOptions } from '../../lib/delay/mo-delay-agent.options';
import { MO_HEADER_REASON } from '../../lib/mo-amqp.constants';
import type { MoAmqpRuntime } from '../../lib/runtime/mo-amqp-runtime';
import { CapturingLogger } from '../support/capturing-logger';
import { FakeBroker, FakeChannel, flush, propertiesOf } from '../support/fake-channel';

// Second T is a multiple of 64 (hold slot 0); the test starts half a second into it.
const T = 64 * 27_000_000;
const NOW = T * 1000 + 500;
const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const KEY = 'employee.engagement.create';
const t = delayTopology('agent');

// Only what the agent reads: built here, not by the option resolver, so this spec tests the agent alone.
const amqp = {
  enabled: true,
  exchange: 'os2mo',
  delayedExchange: 'os2mo_delayed',
  exchangeDurable: true,
  declareExchanges: true,
  host: 'localhost',
  port: 5672,
  timeZone: 'UTC',
  connectTimeoutMs: 5_000,
} as unknown as ResolvedMoAmqpOptions;
const options: ResolvedMoDelayAgentOptions = { prefix: 'agent', queueType: 'classic', prefetch: 100, holdMs: 60_000 };

/** Every property a producer may set; the forwarded copy must carry them all (but the user id). */
const ORIGINAL: Options.Publish = {
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  deliveryMode: 1,
  priority: 3,
  correlationId: 'corr-1',
  replyTo: 'replies',
  expiration: '600000',
  messageId: 'm-1',
  timestamp: 1_700_000_000,
  type: 'mo.event',
  appId: 'os2mo',
  userId: 'someone',
  headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-custom': 'kept' },
};
const { userId: _userId, ...FORWARDED } = ORIGINAL;

/** An event's bytes, spaced as a Python producer writes them: forwarded byte for byte. */
const body = (due: number) => Buffer.from(`{"uuid": "${UUID}",  "time": "${new Date(due).toISOString()}"}`);

/** The runtime's forward: a publish on a confirm channel of its own, resolved by the confirm. */
class FakeRuntime {
  readonly stoppers: (() => Promise<void>)[] = [];
  constructor(readonly out: FakeChannel) {}
  onShutdown(stop: () => Promise<void>): void {
    this.stoppers.push(stop);
  }
  async abortStart(): Promise<void> {}
  async requireBroker(): Promise<void> {}
  forward(exchange: string, routingKey: string, content: Buffer, properties: Options.Publish): Promise<void> {
    return new Promise((resolve, reject) =>
      this.out.publish(exchange, routingKey, content, properties, (err) => (err ? reject(err) : resolve())),
    );
  }
}

/** An agent started on a fake broker; `before` sets the broker up first (bindings an older agent left, refusals). */
async function start(amqpOptions: ResolvedMoAmqpOptions = amqp, before: (broker: FakeBroker) => void = () => {}) {
  jest.useFakeTimers({ now: NOW });
  const logger = new CapturingLogger();
  Logger.overrideLogger(logger);
  const broker = new FakeBroker();
  before(broker);
  const connection = broker.connect();
  const out = (await connection.createConfirmChannel()) as unknown as FakeChannel;
  const runtime = new FakeRuntime(out);
  const agent = new MoDelayAgent(
    amqpOptions,
    options,
    runtime as unknown as MoAmqpRuntime,
    {
      managedConnection: broker.manager,
    } as unknown as AmqpConnection,
  );
  await agent.onApplicationBootstrap();
  await flush();
  /** The channel consuming a queue now. */
  const channelOf = (queue: string) => broker.consumerOf(queue)?.channel as FakeChannel;
  const forwarded = () => broker.published.filter((p) => p.exchange === amqp.delayedExchange);
  const event = (due: number, properties = ORIGINAL) =>
    broker.enqueue(t.incoming, body(due), properties, { exchange: amqp.exchange, routingKey: KEY });
  running = { agent, out, broker };
  return { broker, out, runtime, agent, logger, channelOf, forwarded, event };
}

/** What an agent of an earlier version left: its incoming queue bound `#`. */
function olderAgentsBinding(broker: FakeBroker): void {
  broker.declareExchange(amqp.exchange, 'topic');
  broker.bind(t.incoming, amqp.exchange, '#');
}

/** Fake time on by `ms`, then everything that follows from it. */
async function advance(ms: number): Promise<void> {
  await jest.advanceTimersByTimeAsync(ms);
  await flush();
}

let running: { agent: MoDelayAgent; out: FakeChannel; broker: FakeBroker } | undefined;

afterEach(async () => {
  const was = running;
  running = undefined;
  try {
    if (!was) return;
    // stop() waits for the forwards in hand: the runtime's publish timeout bounds them, here the confirms.
    was.out.confirms = 'auto';
    was.out.confirmPublishes();
    await was.agent.stop();
    // An acknowledgement of a tag not outstanding (say, twice, or on the wrong channel) closes a real channel.
    expect(was.broker.errors).toEqual([]);
  } finally {
    jest.useRealTimers();
  }
});

describe('MoDelayAgent', () => {
  it('declares its queues and consumes incoming, due and the hold queues of these seconds', async () => {
    const { broker, channelOf, logger } = await start();
    expect(channelOf(t.incoming)).toBe(channelOf(t.due));
    expect(channelOf(t.holdQueue(0))).not.toBe(channelOf(t.incoming));
    expect(broker.of('consume').find((c) => c.queue === t.incoming)?.prefetch).toBe(100);
    expect(logger.text).toContain('Delaying events from "os2mo" to "os2mo_delayed" through agent.incoming');
  });

  it('forwards a due event identical (routing key, bytes, every property but the user id), acknowledged only once confirmed', async () => {
    const { broker, out, agent, channelOf, forwarded, event } = await start();
    out.confirms = 'manual';
    event(NOW - 1_000);
    await flush();
    expect(forwarded()).toHaveLength(1);
    const [copy] = forwarded();
    expect(copy.routingKey).toBe(KEY);
    expect(copy.content.equals(body(NOW - 1_000))).toBe(true);
    expect(copy.options).toEqual(FORWARDED);
    const incoming = channelOf(t.incoming);
    expect(broker.of('ack', incoming)).toEqual([]);
    out.confirmPublishes();
    await flush();
    expect(broker.of('ack', incoming).map((a) => a.deliveryTag)).toEqual([1]);
    expect(incoming.outstanding).toEqual([]);
    expect(agent.stats).toMatchObject({ forwarded: 1, parked: 0, laddered: 0 });
  });

  it('parks an event due within holdMs in the hold queue of its second, and forwards it from there at its time, not a millisecond before', async () => {
    const { broker, agent, channelOf, forwarded, event } = await start();
    const due = NOW + 20_000;
    event(due);
    await flush();
    const parked = broker.published.filter((p) => p.exchange === '' && p.routingKey === t.holdQueue(20));
    expect(parked).toHaveLength(1);
    expect(parked[0].options.headers?.[DUE_HEADER]).toBe(due);
    expect(parked[0].options.deliveryMode).toBe(2); // persistent while it waits, whatever the original
    expect(broker.of('ack', channelOf(t.incoming))).toHaveLength(1);
    expect(agent.stats).toMatchObject({ parked: 1, forwarded: 0 });
    await advance(19_999);
    expect(agent.stats.holding).toBe(1); // taken from its hold queue, waiting in memory
    expect(forwarded()).toEqual([]);
    await advance(1);
    expect(forwarded()).toHaveLength(1);
    expect(forwarded()[0].routingKey).toBe(KEY);
    expect(forwarded()[0].content.equals(body(due))).toBe(true);
    expect(forwarded()[0].options).toEqual(FORWARDED); // ladder headers off, delivery mode and expiration back
    const holdChannel = channelOf(t.holdQueue(20));
    expect(holdChannel.outstanding).toEqual([]);
    expect(broker.ready(t.holdQueue(20))).toEqual([]);
    expect(agent.stats).toMatchObject({ parked: 1, forwarded: 1, holding: 0 });
  });

  it('sends an event due after holdMs straight into the wait queue of its highest bit, with its seconds as bit headers', async () => {
    const { broker, agent, channelOf, forwarded, event } = await start();
    event(NOW + 3_600_000); // 3600 s = 2^11 + 2^10 + 2^9 + 2^4
    await flush();
    const [copy] = broker.published.filter((p) => p.exchange === '');
    expect(copy.routingKey).toBe(t.waitQueue(11));
    const bits = Object.entries(copy.options.headers ?? {})
      .filter(([key, value]) => key.startsWith(BIT_HEADER_PREFIX) && value === '1')
      .map(([key]) => Number(key.slice(BIT_HEADER_PREFIX.length)));
    expect(bits.sort((a, b) => b - a)).toEqual([11, 10, 9, 4]);
    expect(broker.of('ack', channelOf(t.incoming))).toHaveLength(1);
    expect(forwarded()).toEqual([]);
    expect(agent.stats).toMatchObject({ laddered: 1, parked: 0 });
  });

  it('holds a due-queue message due within the second in memory and forwards it at its time, never before', async () => {
    const { broker, forwarded } = await start();
    const due = NOW + 700;
    const route = { due, routingKey: KEY, exchange: amqp.exchange, meta: { deliveryMode: 1, expiration: '600000' } };
    broker.enqueue(t.due, body(due), ladderProperties(propertiesOf(ORIGINAL), route, 0));
    await flush();
    await advance(699);
    expect(forwarded()).toEqual([]);
    await advance(1);
    expect(forwarded().map((f) => f.options)).toEqual([FORWARDED]);
  });

  it('gives back an event whose forward failed, after a pause, and forwards it when it comes again', async () => {
    const { broker, out, agent, channelOf, forwarded, event, logger } = await start();
    out.confirms = 'manual';
    event(NOW - 1_000);
    await flush();
    out.failConfirms(new Error('message nacked'));
    await flush();
    expect(logger.text).toContain('Delay agent could not pass message_id m-1 on (message nacked)');
    const incoming = channelOf(t.incoming);
    await advance(999);
    expect(broker.of('nack', incoming)).toEqual([]);
    expect(incoming.outstanding).toEqual([1]);
    await advance(1);
    expect(broker.of('nack', incoming).map((n) => [n.deliveryTag, n.requeue])).toEqual([[1, true]]);
    expect(forwarded()).toHaveLength(2); // it came again and was published again
    out.confirmPublishes();
    await flush();
    expect(broker.of('ack', incoming).map((a) => a.deliveryTag)).toEqual([2]);
    expect(agent.stats).toMatchObject({ forwarded: 1 });
  });

  it.each([
    ['not JSON', Buffer.from('not json'), ORIGINAL],
    ['a ladder header from the events exchange', body(NOW), { ...ORIGINAL, headers: { [DUE_HEADER]: 0 } }],
  ])('dead-letters an incoming event with %s, with the reason, and acknowledges it', async (_what, content, props) => {
    const { broker, agent, channelOf, forwarded } = await start();
    broker.enqueue(t.incoming, content, props, { exchange: amqp.exchange, routingKey: KEY });
    await flush();
    const dead = broker.published.filter((p) => p.routingKey === t.deadLetter);
    expect(dead).toHaveLength(1);
    expect(dead[0].content.equals(content)).toBe(true);
    expect(dead[0].options.headers?.[MO_HEADER_REASON]).toEqual(expect.any(String));
    expect(broker.of('ack', channelOf(t.incoming))).toHaveLength(1);
    expect(forwarded()).toEqual([]);
    expect(agent.stats.deadLettered).toBe(1);
  });

  it('takes only three-word keys of the MO services, and drops the "#" binding of earlier agents', async () => {
    const { broker, agent } = await start(amqp, olderAgentsBinding);
    expect(broker.bindingsOf(t.incoming, amqp.exchange)).toEqual(['employee.*.*', 'org_unit.*.*']);
    // OS2mo's AMQP-subsystem message and a foreign key beside a legacy event: only the event reaches the agent.
    const publisher = (await broker.connect().createConfirmChannel()) as unknown as FakeChannel;
    for (const [key, content] of [
      ['engagement', `"${UUID}"`],
      ['foo.bar', '{}'],
      [KEY, body(NOW + 10_000).toString()],
    ]) {
      publisher.publish(amqp.exchange, key, Buffer.from(content), {}, () => undefined);
    }
    await flush();
    expect(broker.published.filter((p) => p.routingKey === t.deadLetter)).toEqual([]);
    expect(agent.stats.parked).toBe(1);
  });

  it('starts when the old "#" binding cannot be removed (topic permissions), and says what to do', async () => {
    const { broker, agent, logger } = await start(amqp, (b) => {
      olderAgentsBinding(b);
      b.refuseUnbind = true;
    });
    expect(broker.bindingsOf(t.incoming, amqp.exchange)).toEqual(['#', 'employee.*.*', 'org_unit.*.*']);
    expect(logger.text).toContain(`could not remove the "#" binding of "${t.incoming}" to "os2mo"`);
    expect(logger.text).toContain('ACCESS_REFUSED');
    // The refusal closed the side channel only (the afterEach check is for channels that should not have closed).
    expect(broker.errors.splice(0)).toEqual([expect.stringContaining('ACCESS_REFUSED')]);
    // It consumes all the same.
    broker.enqueue(t.incoming, body(NOW + 10_000), ORIGINAL, { exchange: amqp.exchange, routingKey: KEY });
    await flush();
    expect(agent.stats.parked).toBe(1);
  });

  it.each([
    ['a UTF-8 BOM', 'body', `\ufeff{"uuid": "${UUID}", "object_uuid": "${UUID}", "time": "2021-07-27T00:00:00+02:00"}`],
    ['no object_uuid', 'object_uuid', `{"uuid": "${UUID}", "time": "2021-07-27T00:00:00+02:00"}`],
    ['a bare date', 'time', `{"uuid": "${UUID}", "object_uuid": "${UUID}", "time": "2021-07-27"}`],
    [
      'an offset with seconds',
      'time',
      `{"uuid": "${UUID}", "object_uuid": "${UUID}", "time": "1900-01-01T00:00:00+00:50:20"}`,
    ],
  ])(
    'in the os2mo vocabulary dead-letters a body ramqp refuses (%s), naming %s, not forwarding it',
    async (_what, field, text) => {
      const { broker, channelOf, forwarded } = await start({ ...amqp, vocabulary: 'os2mo' } as ResolvedMoAmqpOptions);
      broker.enqueue(t.incoming, text, ORIGINAL, { exchange: amqp.exchange, routingKey: KEY });
      await flush();
      const dead = broker.published.filter((p) => p.routingKey === t.deadLetter);
      expect(dead).toHaveLength(1);
      expect(String(dead[0].options.headers?.[MO_HEADER_REASON])).toContain(`: ${field}: received`);
      expect(String(dead[0].options.headers?.[MO_HEADER_REASON])).toContain('AMQP__VOCABULARY=os2mo');
      expect(broker.of('ack', channelOf(t.incoming))).toHaveLength(1);
      expect(forwarded()).toEqual([]);
    },
  );

  it('in the seed vocabulary forwards those bodies as before (no object_uuid, a bare date)', async () => {
    const { broker, forwarded } = await start();
    broker.enqueue(t.incoming, `{"uuid": "${UUID}", "time": "1970-01-01"}`, ORIGINAL, {
      exchange: amqp.exchange,
      routingKey: KEY,
    });
    await flush();
    expect(forwarded()).toHaveLength(1);
  });

  it('gives back a malformed event whose dead-letter copy was not confirmed, instead of acknowledging it', async () => {
    const { broker, out, channelOf } = await start();
    out.confirms = 'manual';
    broker.enqueue(t.incoming, 'not json', ORIGINAL, { exchange: amqp.exchange, routingKey: KEY });
    await flush();
    out.failConfirms(new Error('message nacked'));
    await advance(1_000);
    const incoming = channelOf(t.incoming);
    expect(broker.of('ack', incoming)).toEqual([]);
    expect(broker.of('nack', incoming).map((n) => [n.deliveryTag, n.requeue])).toEqual([[1, true]]);
  });

  it('forgets what it held from a channel that closed, and forwards its redelivery once', async () => {
    const { broker, agent, channelOf, forwarded } = await start();
    const due = NOW + 700;
    const route = { due, routingKey: KEY, exchange: amqp.exchange, meta: {} };
    broker.enqueue(t.due, body(due), ladderProperties(propertiesOf(ORIGINAL), route, 0));
    await flush();
    expect(agent.stats.holding).toBe(1);
    channelOf(t.due).serverClose('connection forced');
    await advance(0);
    expect(agent.stats.holding).toBe(0);
    await advance(1_000); // the channel opens again; the message comes again, due by now
    expect(forwarded()).toHaveLength(1);
    expect(channelOf(t.due).outstanding).toEqual([]);
    expect(broker.ready(t.due)).toEqual([]);
  });

  it('on stopping: takes nothing new, gives back what it holds, lets a forward in hand finish, closes, and leaves no timer', async () => {
    const { broker, out, agent, channelOf, event } = await start();
    const route = { due: NOW + 700, routingKey: KEY, exchange: amqp.exchange, meta: {} };
    broker.enqueue(t.due, body(NOW + 700), ladderProperties(propertiesOf(ORIGINAL), route, 0));
    await flush();
    out.confirms = 'manual';
    event(NOW - 1_000);
    await flush();
    const incoming = channelOf(t.incoming);
    let stopped = false;
    const stopping = agent.stop().then(() => (stopped = true));
    await flush();
    const tags = broker.of('consume').map((c) => c.consumerTag);
    expect(new Set(broker.of('cancel').map((c) => c.consumerTag))).toEqual(new Set(tags));
    expect(broker.of('nack', incoming).map((n) => n.requeue)).toEqual([true]); // the held one
    expect(stopped).toBe(false); // the forward in hand has no confirm yet
    expect(incoming.closed).toBe(false);
    out.confirmPublishes();
    await stopping;
    expect(broker.of('ack', incoming)).toHaveLength(1);
    expect(broker.channels.filter((c) => c !== out).every((c) => c.closed)).toBe(true);
    expect(jest.getTimerCount()).toBe(0);
    expect(broker.ready(t.incoming)).toEqual([]);
    expect(broker.ready(t.due)).toHaveLength(1);
  });

  // stop() waits for a due-queue forward in hand too (it once did not: the channel closed before
  // the confirm, and the next agent forwarded the message again).
  it('on stopping, lets the forward of a due-queue message in hand finish too', async () => {
    const { broker, out, agent } = await start();
    out.confirms = 'manual';
    const route = { due: NOW - 10, routingKey: KEY, exchange: amqp.exchange, meta: {} };
    broker.enqueue(t.due, body(NOW - 10), ladderProperties(propertiesOf(ORIGINAL), route, 0));
    await flush();
    let stopped = false;
    const stopping = agent.stop().then(() => (stopped = true));
    await flush();
    expect(stopped).toBe(false);
    out.confirmPublishes();
    await stopping;
    expect(broker.ready(t.due)).toEqual([]);
  });
});
