import { Test, TestingModule } from '@nestjs/testing';
import type { ConsumeMessage, Options } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { MO_HEADER_REASON, MoAmqpModule, MoDelayAgent, MoDelayAgentModule } from '../../lib';
import { HOLD_SLOTS, delayTopology } from '../../lib/delay/delay-ladder';
import { AGENT_DELIVERY_LIMIT } from '../../lib/delay/agent-topology';
import { startAgentProcess, stopProcess } from '../support/agent-process';
import { BROKER_URL, Collector, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';

/** The agent's waits include the ladder's seconds: 15 s, not the usual 10. */
const untilAgent = (condition: () => boolean | Promise<boolean>, what: string) => until(condition, what, 15_000);

interface Names {
  exchange: string;
  delayedExchange: string;
  prefix: string;
}

async function bootAgent(
  names: Names,
  timeZone = 'UTC',
  queueType: 'classic' | 'quorum' = 'classic',
  url = BROKER_URL,
  holdMs?: number,
): Promise<TestingModule> {
  const app = await Test.createTestingModule({
    imports: [
      MoAmqpModule.forRoot({
        enabled: true,
        url,
        exchange: names.exchange,
        delayedExchange: names.delayedExchange,
        timeZone,
      }),
      MoDelayAgentModule.forRoot({ prefix: names.prefix, queueType, holdMs }),
    ],
  })
    .setLogger(new CapturingLogger())
    .compile();
  await app.init();
  return app;
}

/** The ISO text of `ms` from now, with an offset, with Z, or naive in Europe/Copenhagen. */
function inFuture(ms: number, shape: 'offset' | 'z' | 'naive-cph' = 'offset'): { text: string; due: number } {
  const due = Date.now() + ms;
  const iso = new Date(due).toISOString(); // 2021-07-27T10:00:00.123Z
  if (shape === 'z') return { text: iso, due };
  if (shape === 'offset') return { text: iso.replace('Z', '+00:00'), due };
  const offset = new Intl.DateTimeFormat('en-US', { timeZone: 'Europe/Copenhagen', timeZoneName: 'longOffset' })
    .format(new Date(due))
    .match(/GMT([+-]\d\d):(\d\d)/) as RegExpMatchArray;
  const local = new Date(due + (Number(offset[1]) * 60 + Math.sign(Number(offset[1])) * Number(offset[2])) * 60_000);
  return { text: local.toISOString().replace('Z', ''), due };
}

describe('the delay agent against RabbitMQ', () => {
  let broker: TestBroker;
  let names: Names;
  let delayed: Collector;
  let received: Map<string, number>;
  let app: TestingModule | undefined;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    names = { exchange: uniqueName('events'), delayedExchange: uniqueName('delayed'), prefix: uniqueName('agent') };
    broker.track(names.exchange);
    broker.trackDelayAgent(names.prefix);
    await broker.channel.assertExchange(names.exchange, 'topic', { durable: true });
    delayed = await broker.collect(names.delayedExchange, '#');
    received = new Map();
    const push = delayed.push.bind(delayed);
    delayed.push = (message: ConsumeMessage) => {
      received.set(String(message.properties.messageId), Date.now());
      push(message);
    };
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
  });

  function send(time: string, options: Options.Publish = {}, routingKey = 'employee.engagement.create') {
    const messageId = randomUUID();
    const body = Buffer.from(`{"uuid": "${randomUUID()}", "time": "${time}"}`);
    broker.channel.publish(names.exchange, routingKey, body, {
      persistent: true,
      contentType: 'application/json',
      messageId,
      timestamp: 1_700_000_000,
      ...options,
    });
    return { messageId, body };
  }

  function lateness(messageId: string, due: number): number {
    return (received.get(messageId) as number) - due;
  }

  it('forwards a due message at once, identical: routing key, bytes and properties', async () => {
    app = await bootAgent(names);
    const { messageId, body } = send('2019-03-24T13:02:15.132025', {
      headers: { 'x-trace': 'abc', 'x-count': 7 },
      priority: 3,
      correlationId: 'corr-1',
      appId: 'os2mo',
      type: 'mo-event',
    });
    const [message] = await delayed.waitFor(1, 2_000);
    expect(message.fields).toMatchObject({ exchange: names.delayedExchange, routingKey: 'employee.engagement.create' });
    expect(message.content.equals(body)).toBe(true);
    expect(message.properties).toEqual(
      expect.objectContaining({
        messageId,
        contentType: 'application/json',
        deliveryMode: 2,
        timestamp: 1_700_000_000,
        priority: 3,
        correlationId: 'corr-1',
        appId: 'os2mo',
        type: 'mo-event',
        headers: { 'x-trace': 'abc', 'x-count': 7 },
      }),
    );
    // The agent counts a forward once its confirm is in, which may come after the copy arrived.
    await untilAgent(() => app?.get(MoDelayAgent).stats.forwarded === 1, 'the forward to be counted');
    expect(app.get(MoDelayAgent).stats).toMatchObject({ forwarded: 1, laddered: 0 });
  });

  it('forwards a message due in 3 s no earlier than its time and within 1 s after, identical after the ladder', async () => {
    app = await bootAgent(names, 'UTC', 'classic', BROKER_URL, 0); // holdMs 0: through the ladder
    const { text, due } = inFuture(3_000);
    const { messageId, body } = send(text, { headers: { 'x-trace': 'abc' }, expiration: '600000' });
    await delayed.waitFor(1, 6_000);
    const [message] = delayed.messages;
    expect(lateness(messageId, due)).toBeGreaterThanOrEqual(0);
    expect(lateness(messageId, due)).toBeLessThanOrEqual(1_000);
    expect(message.content.equals(body)).toBe(true);
    // The ladder's headers and RabbitMQ's dead-letter history are gone; the expiration is back.
    expect(message.properties.headers).toEqual({ 'x-trace': 'abc' });
    expect(message.properties.expiration).toBe('600000');
    expect(message.properties.deliveryMode).toBe(2);
    // The agent counts a forward once its confirm is in, which may come after the copy arrived.
    await untilAgent(() => app?.get(MoDelayAgent).stats.forwarded === 1, 'the forward to be counted');
    expect(app.get(MoDelayAgent).stats).toMatchObject({ forwarded: 1, laddered: 1 });
  });

  it('parks a message due within holdMs in the hold queue of its second: not through the ladder, identical, on time', async () => {
    app = await bootAgent(names);
    const { text, due } = inFuture(4_000);
    const { messageId, body } = send(text, { headers: { 'x-trace': 'abc' }, expiration: '600000' });
    await untilAgent(() => app?.get(MoDelayAgent).stats.parked === 1, 'the agent to park it');
    // Waiting in its second's hold queue, until the agent takes it just before that second.
    const slot = delayTopology(names.prefix).holdQueue(Math.floor(due / 1000) % HOLD_SLOTS);
    // (The start-up sweep may hold it for a moment before giving it back.)
    await until(async () => (await broker.depth(slot)) === 1, 'the message in its hold queue', 2_000);
    await delayed.waitFor(1, 6_000);
    const [message] = delayed.messages;
    expect(lateness(messageId, due)).toBeGreaterThanOrEqual(0);
    expect(lateness(messageId, due)).toBeLessThanOrEqual(500);
    expect(message.content.equals(body)).toBe(true);
    expect(message.properties.headers).toEqual({ 'x-trace': 'abc' });
    expect(message.properties.expiration).toBe('600000');
    expect(message.properties.deliveryMode).toBe(2);
    await untilAgent(() => app?.get(MoDelayAgent).stats.forwarded === 1, 'the forward to be counted');
    expect(app.get(MoDelayAgent).stats).toMatchObject({ forwarded: 1, parked: 1, laddered: 0, holding: 0 });
    await untilAgent(async () => (await broker.depth(slot)) === 0, 'the hold queue to be empty');
  });

  it('gives back what it holds when it stops: the next agent sends it, not early', async () => {
    app = await bootAgent(names);
    const { text, due } = inFuture(2_500);
    const { messageId } = send(text);
    await untilAgent(() => app?.get(MoDelayAgent).stats.holding === 1, 'the agent to hold it');
    await app.close();
    app = undefined;
    expect(received.has(messageId)).toBe(false);
    app = await bootAgent(names);
    await untilAgent(() => received.has(messageId), 'the message from the next agent');
    expect(lateness(messageId, due)).toBeGreaterThanOrEqual(0);
  });

  it('sends at once, when it starts, what fell due in a hold queue while no agent ran', async () => {
    app = await bootAgent(names);
    const sent = [5_000, 20_000, 40_000].map((ms) => {
      const { text, due } = inFuture(ms);
      return { ...send(text), due };
    });
    await untilAgent(() => app?.get(MoDelayAgent).stats.parked === 3, 'the agent to park them');
    await app.close();
    app = undefined;
    await new Promise((resolve) => setTimeout(resolve, 6_000)); // the first falls due meanwhile
    const started = Date.now();
    app = await bootAgent(names);
    await untilAgent(() => received.has(sent[0].messageId), 'the overdue message');
    // Swept at start, not when its queue's turn comes round again (64 s).
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(lateness(sent[0].messageId, sent[0].due)).toBeGreaterThanOrEqual(0);
    // The others, not yet due, stay parked: none early.
    expect(received.has(sent[1].messageId) || received.has(sent[2].messageId)).toBe(false);
  });

  it('reads all three time shapes, never early', async () => {
    app = await bootAgent(names, 'Europe/Copenhagen');
    const sent = (['offset', 'z', 'naive-cph'] as const).map((shape, i) => {
      const { text, due } = inFuture(1_500 + i * 300, shape);
      return { ...send(text), due };
    });
    await delayed.waitFor(3, 6_000);
    for (const { messageId, due } of sent) {
      expect(lateness(messageId, due)).toBeGreaterThanOrEqual(0);
      expect(lateness(messageId, due)).toBeLessThanOrEqual(1_000);
    }
  });

  it('delivers what was published while no agent ran, once one starts', async () => {
    app = await bootAgent(names); // declares the durable incoming queue
    await app.close();
    app = undefined;
    const now = send('2021-07-27T00:00:00+02:00');
    const soon = inFuture(2_000);
    const later = { ...send(soon.text), due: soon.due };
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await broker.depth(delayTopology(names.prefix).incoming)).toBe(2);
    expect(delayed.messages).toHaveLength(0);

    app = await bootAgent(names);
    await delayed.waitFor(2, 6_000);
    expect(received.has(now.messageId)).toBe(true);
    expect(lateness(later.messageId, later.due)).toBeGreaterThanOrEqual(0);
  });

  it('holds a year-9999 message safely in the ladder instead of rejecting it', async () => {
    app = await bootAgent(names);
    send('9999-12-31T23:59:59.999999+00:00');
    const t = delayTopology(names.prefix);
    await untilAgent(async () => (await broker.depth(t.waitQueue(28))) === 1, 'the message on the top rung');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // Exactly one copy, on the top rung only: nothing multiplied along the ladder.
    for (let level = 0; level < 28; level++) expect(await broker.depth(t.waitQueue(level))).toBe(0);
    expect(await broker.depth(t.waitQueue(28))).toBe(1);
    expect(await broker.depth(t.due)).toBe(0);
    expect(await broker.depth(t.deadLetter)).toBe(0);
    expect(delayed.messages).toHaveLength(0);
  });

  it('sends malformed messages to its DLQ with a reason, and keeps going', async () => {
    app = await bootAgent(names);
    send('next tuesday');
    broker.channel.publish(names.exchange, 'employee.engagement.create', Buffer.from('not json'));
    send('2021-07-27', {}, 'employee.person.create');
    const good = send('2021-07-27');
    await delayed.waitFor(1, 3_000);
    expect(delayed.messages[0].properties.messageId).toBe(good.messageId);
    const dlq = delayTopology(names.prefix).deadLetter;
    await untilAgent(async () => (await broker.depth(dlq)) === 3, 'three dead-lettered');
    const reasons = (await broker.drain(dlq)).map((m) => String(m.properties.headers?.[MO_HEADER_REASON]));
    expect(reasons).toEqual([
      expect.stringContaining('time: received "next tuesday"'),
      expect.stringContaining('body: received "not json"'),
      expect.stringContaining('routing key: received "employee.person.create"'),
    ]);
  });

  it('in quorum mode forwards a message through the ladder no earlier than its time', async () => {
    app = await bootAgent(names, 'UTC', 'quorum', BROKER_URL, 0);
    const { text, due } = inFuture(3_000);
    const { messageId, body } = send(text);
    const [message] = await delayed.waitFor(1, 6_000);
    expect(lateness(messageId, due)).toBeGreaterThanOrEqual(0);
    expect(lateness(messageId, due)).toBeLessThanOrEqual(1_000);
    expect(message.content.equals(body)).toBe(true);
    // The agent counts a forward once its confirm is in, which may come after the copy arrived.
    await untilAgent(() => app?.get(MoDelayAgent).stats.forwarded === 1, 'the forward to be counted');
    expect(app.get(MoDelayAgent).stats).toMatchObject({ forwarded: 1, laddered: 1 });
  });

  it('in quorum mode dead-letters a message agents keep dying on, from the incoming and the due queue', async () => {
    app = await bootAgent(names, 'UTC', 'quorum');
    await app.close(); // the queues stay; the test's channel plays the agent that dies
    app = undefined;
    const t = delayTopology(names.prefix);
    const body = Buffer.from(`{"uuid": "${randomUUID()}", "time": "2021-07-27"}`);
    for (const queue of [t.incoming, t.due]) {
      broker.channel.sendToQueue(queue, body, { persistent: true, messageId: queue });
      expect(await broker.returnUntilDeadLettered(queue, t.deadLetter)).toBe(AGENT_DELIVERY_LIMIT + 1);
      const [dead] = await broker.drain(t.deadLetter);
      expect(dead.properties.messageId).toBe(queue);
      expect(dead.content).toEqual(body);
    }
  });

  it('closes within its bound when the broker has stopped answering, and the messages it held are not lost', async () => {
    const proxy = await TcpProxy.start();
    let messageId = '';
    try {
      app = await bootAgent(names, 'UTC', 'classic', proxy.url);
      const { text } = inFuture(600); // held in memory for its last fraction of a second
      messageId = send(text).messageId;
      await untilAgent(() => app?.get(MoDelayAgent).stats.holding === 1, 'the agent to hold it');
      proxy.pause();
      const started = Date.now();
      await app.close();
      app = undefined;
      // The shutdown bound (5 s), then at most 2 s each for the publisher's and the connection's
      // close (9 s), and room for a loaded machine. Before, it never returned.
      expect(Date.now() - started).toBeLessThan(12_000);
    } finally {
      await proxy.close();
    }
    // The held message went back to the due queue with the connection: the next agent sends it.
    app = await bootAgent(names);
    await untilAgent(() => received.has(messageId), 'the held message');
  });

  it('runs side by side with a second agent (another process): each message at least once, none early', async () => {
    app = await bootAgent(names);
    const other = await startAgentProcess(names);
    try {
      const sent = Array.from({ length: 200 }, (_, i) => {
        const { text, due } = inFuture(((i % 10) + 1) * 250);
        return { ...send(text), due };
      });
      await untilAgent(() => sent.every((m) => received.has(m.messageId)), 'all 200 delivered');
      for (const { messageId, due } of sent) expect(lateness(messageId, due)).toBeGreaterThanOrEqual(0);
      // The in-process agent took part of the incoming messages, not all: the other one took a share.
      // (Each parks what it takes; whichever consumes a hold queue at the time forwards.)
      const stats = app.get(MoDelayAgent).stats;
      expect(stats.parked).toBeGreaterThan(0);
      expect(stats.parked).toBeLessThan(200);
    } finally {
      await stopProcess(other, 'SIGTERM');
    }
  });
});
