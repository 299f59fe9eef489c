import type { ConsumeMessage } from 'amqplib';
import type { Delivery } from '../../lib/delay/agent-channel';
import { DUE_HEADER, HOLD_SLOTS, delayTopology } from '../../lib/delay/delay-ladder';
import { HoldSlots } from '../../lib/delay/hold-slots';
import { FakeBroker, FakeChannel, flush } from '../support/fake-channel';

// Second T is a multiple of 64, so its hold slot is 0; the test starts half a second into it.
const T = 64 * 27_000_000;
const NOW = T * 1000 + 500;
const PREFETCH = 100;
const topology = delayTopology('agent');
const hold = (slot: number) => topology.holdQueue((slot + HOLD_SLOTS) % HOLD_SLOTS);
/** Slots T-2 … T+2: the seconds from 1.5 s ahead back to 2 s ago. */
const CURRENT = [-2, -1, 0, 1, 2].map(hold);

interface Taken {
  message: ConsumeMessage;
  delivery: Delivery;
}

async function start({ sweepsEnd = true, beforeOpen = (_broker: FakeBroker) => undefined as void } = {}) {
  jest.useFakeTimers({ now: NOW });
  const broker = new FakeBroker();
  for (let slot = 0; slot < HOLD_SLOTS; slot++) broker.declareQueue(hold(slot));
  // A message of a later round in every other slot ends its sweep at once.
  if (sweepsEnd) {
    for (let slot = 3; slot < HOLD_SLOTS - 2; slot++) {
      broker.enqueue(hold(slot), `later-${slot}`, { headers: { [DUE_HEADER]: NOW + 60_000 } });
    }
  }
  beforeOpen(broker);
  broker.connect();
  const taken: Taken[] = [];
  const errors: unknown[] = [];
  const slots = new HoldSlots(broker.manager.asManager, {
    topology,
    prefetch: PREFETCH,
    onMessage: (message, delivery) => taken.push({ message, delivery }),
    onError: (err) => errors.push(err),
  });
  running = { slots, broker, errors };
  await slots.opened;
  await flush();
  const channel = broker.channels[0];
  /** The consumer tag of a queue's latest consumer. */
  const tagOf = (queue: string) => broker.consumerOf(queue)?.consumerTag;
  const consumed = () => new Set(broker.of('consume').map((c) => c.queue));
  /**
   * The consumers told to go. One whose first delivery, read before its consume-ok, makes it go
   * is cancelled twice (by the delivery, and after the consume-ok); RabbitMQ answers both.
   */
  const cancelled = () => [...new Set(broker.of('cancel').map((c) => c.consumerTag))];
  return { broker, channel, slots, taken, errors, tagOf, consumed, cancelled };
}

/** Fake time on by `ms`, then everything that follows from it. */
async function advance(ms: number): Promise<void> {
  await jest.advanceTimersByTimeAsync(ms);
  await flush();
}

let running: { slots: HoldSlots; broker: FakeBroker; errors: unknown[] } | undefined;

afterEach(async () => {
  const was = running;
  running = undefined;
  try {
    await was?.slots.close();
  } finally {
    jest.useRealTimers();
  }
  // An acknowledgement of a tag not outstanding (say, twice, or on the wrong channel) closes a real channel.
  expect(was?.broker.errors).toEqual([]);
  expect(was?.errors).toEqual([]);
});

describe('HoldSlots', () => {
  it('consumes the queues of the seconds from 1.5 s ahead to 2 s ago with its prefetch, and sweeps the rest with a small one', async () => {
    const { broker, errors } = await start({ sweepsEnd: false });
    // basic.qos applies to the consumers started after it: each consumer has the prefetch meant for it.
    const consumes = broker.of('consume');
    expect(consumes.filter((c) => c.prefetch === PREFETCH).map((c) => c.queue)).toEqual(CURRENT);
    const swept = consumes.filter((c) => c.prefetch === 20).map((c) => c.queue);
    expect(swept).toHaveLength(HOLD_SLOTS - CURRENT.length);
    expect(new Set([...swept, ...CURRENT]).size).toBe(HOLD_SLOTS);
    expect(broker.of('prefetch').map((p) => p.count)).toEqual([PREFETCH, 20]);
    expect(errors).toEqual([]);
  });

  it("takes each second's queue 1.5 s before it and lets it go 2 s after it, as the clock runs", async () => {
    const { broker, tagOf, consumed, cancelled } = await start();
    // The sweeps ended at their first message of a later round; that message went back.
    expect(cancelled()).toHaveLength(HOLD_SLOTS - CURRENT.length);
    expect(broker.of('nack').every((n) => n.requeue)).toBe(true);
    expect(broker.ready(hold(3))).toEqual([expect.objectContaining({ content: 'later-3', redelivered: true })]);
    const ownTag = tagOf(hold(-2)) as string;
    await advance(499); // T + 0.999 s
    expect(cancelled()).not.toContain(ownTag);
    await advance(1); // T + 1 s: second T-2 ended 2 s ago
    expect(cancelled().at(-1)).toBe(ownTag);
    const consumesBefore = broker.of('consume').filter((c) => c.queue === hold(3)).length;
    await advance(499); // T + 1.499 s
    expect(broker.of('consume').filter((c) => c.queue === hold(3))).toHaveLength(consumesBefore);
    await advance(1); // T + 1.5 s: second T+3 begins in 1.5 s
    expect(broker.of('consume').at(-1)).toMatchObject({ queue: hold(3), prefetch: PREFETCH });
    expect(consumed()).toContain(hold(3));
  });

  it('acknowledges in delivery order, several at once, whatever order the messages are settled in', async () => {
    const { broker, channel, taken } = await start({ sweepsEnd: false });
    for (let i = 1; i <= 5; i++) broker.enqueue(hold(0), `m${i}`);
    await flush();
    const d = taken.map((t) => t.delivery);
    expect(taken.map((t) => [t.message.content.toString(), t.message.fields.deliveryTag])).toEqual([
      ['m1', 1],
      ['m2', 2],
      ['m3', 3],
      ['m4', 4],
      ['m5', 5],
    ]);
    d[2].ack();
    expect(broker.of('ack')).toEqual([]); // 1 and 2 are still outstanding
    d[0].ack();
    d[1].ack();
    d[4].ack();
    d[3].ack();
    expect(broker.of('ack', channel).map((a) => [a.deliveryTag, a.multiple])).toEqual([
      [1, true],
      [3, true],
      [5, true],
    ]);
    await flush();
    expect(channel.outstanding).toEqual([]);
    expect(broker.errors).toEqual([]);
  });

  it('sends a requeue or a reject at once; the acknowledgement after it leaves it alone', async () => {
    const { broker, channel, taken } = await start({ sweepsEnd: false });
    for (let i = 1; i <= 4; i++) broker.enqueue(hold(1), `m${i}`);
    await flush();
    const [d1, d2, d3, d4] = taken.map((t) => t.delivery);
    d2.requeue();
    d3.reject();
    expect(broker.of('nack').map((n) => [n.deliveryTag, n.requeue])).toEqual([
      [2, true],
      [3, false],
    ]);
    d4.ack();
    expect(broker.of('ack')).toEqual([]);
    d1.ack();
    expect(broker.of('ack').map((a) => [a.deliveryTag, a.multiple])).toEqual([[4, true]]);
    await flush();
    // m2 came again (a new tag); m3 is gone (rejected); the broker took every acknowledgement.
    expect(taken.slice(4).map((t) => [t.message.content.toString(), t.message.fields.deliveryTag])).toEqual([
      ['m2', 5],
    ]);
    expect(channel.outstanding).toEqual([5]);
    expect(broker.errors).toEqual([]);
  });

  it('sweeps up what fell due while no one consumed a queue, and ends at the first message not yet due, given back after the cancel-ok', async () => {
    const { broker, taken, tagOf, cancelled } = await start({
      sweepsEnd: false,
      beforeOpen: (b) => {
        b.onChannel = (channel) => channel.holdAnswers('cancel');
        const due = (ms: number) => ({ headers: { [DUE_HEADER]: ms } });
        b.enqueue(hold(10), 'late', due(NOW - 30_000));
        b.enqueue(hold(10), 'within-the-lead', due(NOW + 1_500));
        b.enqueue(hold(10), 'not-yet', due(NOW + 1_501));
        b.enqueue(hold(10), 'behind-it', due(NOW - 1_000));
      },
    });
    const channel = broker.channels[0] as FakeChannel;
    expect(taken.map((t) => t.message.content.toString())).toEqual(['late', 'within-the-lead']);
    expect(cancelled()).toEqual([tagOf(hold(10))]);
    expect(broker.of('nack')).toEqual([]); // not before the cancel-ok: a quorum queue would hand them straight back
    channel.answer('cancel');
    await flush();
    expect(broker.of('nack').map((n) => [n.deliveryTag, n.requeue])).toEqual([
      [3, true],
      [4, true],
    ]);
    expect(broker.ready(hold(10)).map((m) => [m.content, m.redelivered])).toEqual([
      ['not-yet', true],
      ['behind-it', true],
    ]);
    // Its second has not come: the sweep's end starts no consumer of its own.
    expect(broker.of('consume').filter((c) => c.queue === hold(10))).toHaveLength(1);
  });

  it('gives back a delivery that comes after its consumer is told to go, once the cancel is answered', async () => {
    const { broker, channel, taken, tagOf } = await start();
    channel.holdAnswers('cancel');
    await advance(500); // second T-2's consumer is told to go
    expect(broker.of('cancel').at(-1)?.consumerTag).toBe(tagOf(hold(-2)));
    broker.enqueue(hold(-2), 'on-its-way');
    await flush();
    expect(broker.of('deliver').at(-1)).toMatchObject({ queue: hold(-2) });
    expect(taken).toEqual([]);
    expect(broker.of('nack')).toHaveLength(HOLD_SLOTS - CURRENT.length); // the sweeps' only
    channel.answer('cancel');
    await flush();
    expect(broker.of('nack').at(-1)).toMatchObject({ requeue: true });
    expect(broker.ready(hold(-2))).toEqual([expect.objectContaining({ content: 'on-its-way', redelivered: true })]);
    expect(taken).toEqual([]);
  });

  it('stops consuming, consumes nothing new as the clock runs, and still acknowledges what it holds', async () => {
    const { broker, slots, taken } = await start();
    broker.enqueue(hold(0), 'held');
    await flush();
    await slots.stopConsuming();
    const open = broker.of('consume').filter((c) => !broker.of('cancel').some((x) => x.consumerTag === c.consumerTag));
    expect(open).toEqual([]);
    const consumes = broker.of('consume').length;
    await advance(10_000);
    expect(broker.of('consume')).toHaveLength(consumes);
    taken[0].delivery.ack();
    expect(broker.of('ack').at(-1)).toMatchObject({ multiple: true });
    expect(broker.errors).toEqual([]);
  });

  it('cancels, on stopping, a consumer whose consume-ok has not come yet, once it comes', async () => {
    const { broker, channel, slots, cancelled } = await start();
    broker.purge(hold(3)); // no delivery tells the consumer its tag before consume-ok
    channel.holdAnswers('consume');
    await advance(1_000); // second T+3's consume goes out
    const pending = broker.of('consume').at(-1);
    expect(pending?.queue).toBe(hold(3));
    const stopping = slots.stopConsuming();
    await flush();
    expect(cancelled()).not.toContain(pending?.consumerTag);
    channel.answer('consume');
    await stopping;
    await flush();
    expect(cancelled()).toContain(pending?.consumerTag);
  });

  it('leaves no timer behind once closed, and opens no channel again', async () => {
    const { broker, slots, channel } = await start();
    await slots.close();
    expect(channel.closed).toBe(true);
    expect(jest.getTimerCount()).toBe(0);
    const events = broker.events.length;
    await advance(60_000);
    expect(broker.events).toHaveLength(events);
    expect(broker.channels).toHaveLength(1);
  });

  it('on a new channel consumes and sweeps again; a delivery of the closed one is not acknowledged on it', async () => {
    const { broker, taken, channel } = await start();
    broker.enqueue(hold(0), 'm1');
    await flush();
    expect(taken).toHaveLength(1);
    channel.serverClose('connection forced');
    expect(broker.ready(hold(0))).toEqual([expect.objectContaining({ content: 'm1', redelivered: true })]);
    await advance(1_000); // the channel keeper opens another on the same connection
    const second = broker.channels[1];
    expect(second).toBeDefined();
    expect(
      broker
        .of('consume', second)
        .filter((c) => c.prefetch === PREFETCH)
        .map((c) => c.queue),
    ).toEqual([hold(-1), hold(0), hold(1), hold(2), hold(3)]);
    expect(broker.of('consume', second).filter((c) => c.prefetch === 20)).toHaveLength(HOLD_SLOTS - CURRENT.length);
    expect(taken.filter((t) => t.message.content.toString() === 'm1').map((t) => t.message.fields.redelivered)).toEqual(
      [false, true],
    );
    const [old, again] = taken.filter((t) => t.message.content.toString() === 'm1');
    expect(old.delivery.open).toBe(false);
    old.delivery.ack(); // its tag means another message on the new channel
    expect(broker.of('ack')).toEqual([]);
    for (const t of taken.filter((t) => t !== old && t !== again)) t.delivery.ack();
    again.delivery.ack();
    await flush();
    expect(second.outstanding).toEqual([]);
    expect(broker.errors).toEqual([]);
  });
});
