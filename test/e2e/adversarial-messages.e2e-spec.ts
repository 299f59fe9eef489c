import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import type { GetMessage } from 'amqplib';
import { randomUUID } from 'node:crypto';
import {
  MO_HEADER_ATTEMPT,
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MO_HEADER_ROUTING_KEY,
  MoEventMessage,
  MoEventSubscribe,
  MoEventsService,
} from '../../lib';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';

/**
 * Poison for an `@MoEventSubscribe` consumer: spoofed `x-mo-amqp-*` headers,
 * malformed attempts on its own queue, bodies that are no MO event. Each one
 * must end in exactly one place (handled, or in `<queue>.dlq` with its body and
 * message_id intact and a reason naming what was wrong), and nothing may loop.
 */

const CASE_MS = 15_000;
/** How long a case watches, after the dead-letters, for anything coming round again. */
const QUIET_MS = 2_500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function goodBody(uuid = randomUUID()): Buffer {
  return Buffer.from(JSON.stringify({ uuid, time: '2021-07-27T00:00:00+02:00' }));
}

describe('adversarial messages to an @MoEventSubscribe consumer', () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;
  let exchange: string;
  let logger: CapturingLogger;
  let queue: string;
  let dlq: string;
  /** Every call of the handler. */
  let handled: MoEventMessage[];

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('adv-msg');
    broker.track(exchange);
    queue = uniqueName('adv-msg-q');
    dlq = `${queue}.dlq`;
    broker.trackQueue(queue);
    broker.trackQueue(dlq);
    logger = new CapturingLogger();
    handled = [];
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
  });

  /** A consumer of `*.*.*` on `queue`; it throws for the uuids in `failFor`. */
  async function bootConsumer(failFor: Set<string> = new Set()): Promise<MoEventsService> {
    const calls = handled;
    const q = queue;
    @Injectable()
    class Consumer {
      @MoEventSubscribe({ queue: q, retryDelayMs: 0 })
      async onEvent(event: MoEventMessage) {
        calls.push(event);
        if (failFor.has(event.uuid)) throw new Error(`boom ${event.uuid}`);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Consumer], logger });
    return app.get(MoEventsService);
  }

  function publish(routingKey: string, body: Buffer, messageId: string, headers?: Record<string, unknown>): void {
    broker.channel.publish(exchange, routingKey, body, { messageId, persistent: true, headers });
  }

  /** Waits for exactly `count` messages in the dead-letter queue and takes them, by message_id. */
  async function deadLetters(count: number): Promise<Map<string, GetMessage>> {
    await until(async () => (await broker.depth(dlq)) >= count, `${count} dead-lettered messages in ${dlq}`);
    await sleep(300); // a surplus copy would be on its way
    const messages = await broker.drain(dlq);
    expect(messages).toHaveLength(count);
    const byId = new Map(messages.map((m) => [String(m.properties.messageId), m]));
    expect(byId.size).toBe(count); // one copy each
    return byId;
  }

  /** Nothing comes round again: the queues stay empty and the counts stay where they are. */
  async function staysQuiet(events: MoEventsService): Promise<void> {
    const before = { handled: handled.length, counters: events.counters };
    await sleep(QUIET_MS);
    expect(await broker.depth(queue)).toBe(0);
    expect(await broker.depth(dlq)).toBe(0);
    expect(handled.length).toBe(before.handled);
    expect(events.counters.deadLettered).toBe(before.counters.deadLettered);
    expect(events.counters.retried).toBe(before.counters.retried);
  }

  it(
    'dead-letters a message from an exchange whose x-mo-amqp-routing-key is another key, never handling it under that key',
    async () => {
      const events = await bootConsumer();
      const spoofed: [string, unknown][] = [
        ['x.y.z', 'employee.employee.create'], // the issue: a key outside the vocabulary dressed up as a valid one
        ['org_unit.address.create', 'employee.employee.create'], // a valid key dressed up as another
        ['employee.it.create', 7], // not even text
        ['employee.it.create', 'employee.it.create '], // one space off
      ];
      const sent = spoofed.map(([key, header]) => {
        const id = `spoof-${randomUUID()}`;
        const body = goodBody();
        publish(key, body, id, { [MO_HEADER_ROUTING_KEY]: header, 'x-trace': 'kept' });
        return { id, key, header, body };
      });
      const goodUuid = randomUUID();
      publish('employee.it.update', goodBody(goodUuid), 'good');

      await until(() => handled.length === 1, 'the good event after the spoofed ones');
      const dead = await deadLetters(sent.length);
      for (const { id, key, header, body } of sent) {
        const m = dead.get(id) as GetMessage;
        expect(m).toBeDefined();
        const reason = String(m.properties.headers?.[MO_HEADER_REASON]);
        expect(reason).toContain(`header ${MO_HEADER_ROUTING_KEY}`);
        expect(reason).toContain(JSON.stringify(header));
        expect(reason).toContain(`"${key}"`);
        // The dead-letter copy says where it really came from, not what it claimed.
        expect(m.properties.headers?.[MO_HEADER_ROUTING_KEY]).toBe(key);
        expect(m.properties.headers?.[MO_HEADER_EXCHANGE]).toBe(exchange);
        expect(m.properties.headers?.[MO_HEADER_QUEUE]).toBe(queue);
        expect(m.properties.headers?.['x-trace']).toBe('kept');
        expect(m.content.equals(body)).toBe(true);
      }
      expect(handled.map((e) => e.uuid)).toEqual([goodUuid]);
      expect(handled.map((e) => e.routingKey)).not.toContain('employee.employee.create');
      expect(events.counters.deadLettered).toBe(sent.length);
      await staysQuiet(events);
    },
    CASE_MS,
  );

  it(
    'from an exchange, handles a header equal to the delivered key, and ignores any x-mo-amqp-attempt',
    async () => {
      const failing = randomUUID();
      const events = await bootConsumer(new Set([failing]));
      const same = randomUUID();
      publish('employee.it.create', goodBody(same), 'same-key', { [MO_HEADER_ROUTING_KEY]: 'employee.it.create' });
      const junkAttempt = randomUUID();
      publish('employee.it.create', goodBody(junkAttempt), 'junk-attempt', { [MO_HEADER_ATTEMPT]: 'lots' });
      // A first attempt, whatever it says: the handler gets its 1 + 3 tries, not none.
      publish('employee.it.delete', goodBody(failing), 'huge-attempt', { [MO_HEADER_ATTEMPT]: 1e9 });

      await until(() => handled.filter((e) => e.uuid === failing).length === 4, 'four tries of the failing event');
      const dead = await deadLetters(1);
      const m = dead.get('huge-attempt') as GetMessage;
      expect(m).toBeDefined();
      const reason = String(m.properties.headers?.[MO_HEADER_REASON]);
      expect(reason).toBe(`the handler failed 4 times; last error: Error: boom ${failing}`);
      expect(reason).not.toContain('1000000000');
      expect(m.properties.headers?.[MO_HEADER_ROUTING_KEY]).toBe('employee.it.delete');
      expect(m.properties.headers?.[MO_HEADER_ATTEMPT]).toBe(4); // our count, not the sender's
      expect(m.properties.messageId).toBe('huge-attempt');
      expect(m.content.equals(goodBody(failing))).toBe(true);

      const tries = handled.filter((e) => e.uuid === failing);
      expect(tries.map((e) => e.redelivered)).toEqual([false, true, true, true]);
      expect(tries.every((e) => e.routingKey === 'employee.it.delete')).toBe(true);
      const once = handled.filter((e) => e.uuid !== failing);
      expect(once.map((e) => [e.uuid, e.routingKey, e.redelivered]).sort()).toEqual(
        [
          [same, 'employee.it.create', false],
          [junkAttempt, 'employee.it.create', false],
        ].sort(),
      );
      expect(events.counters).toMatchObject({ retried: 3, deadLettered: 1 });
      await staysQuiet(events);
    },
    CASE_MS,
  );

  it(
    'on its own queue, dead-letters a malformed x-mo-amqp-attempt at once, without calling the handler',
    async () => {
      const events = await bootConsumer();
      const attempts: unknown[] = [1e9, -1, 0, 2.5, '3', 102, true];
      const sent = attempts.map((attempt, i) => {
        const id = `attempt-${i}`;
        const body = goodBody();
        broker.channel.sendToQueue(queue, body, {
          messageId: id,
          persistent: true,
          headers: { [MO_HEADER_ROUTING_KEY]: 'employee.it.create', [MO_HEADER_ATTEMPT]: attempt },
        });
        return { id, attempt, body };
      });
      // Other headers of a forged own copy.
      broker.channel.sendToQueue(queue, goodBody(), {
        messageId: 'key-not-text',
        headers: { [MO_HEADER_ROUTING_KEY]: 42, [MO_HEADER_ATTEMPT]: 2 },
      });
      broker.channel.sendToQueue(queue, goodBody(), {
        messageId: 'key-outside-vocabulary',
        headers: { [MO_HEADER_ROUTING_KEY]: 'evil.routing.key', [MO_HEADER_ATTEMPT]: 2 },
      });
      const deadCount = sent.length + 2;
      await until(async () => (await broker.depth(dlq)) >= deadCount, 'the forged copies dead-lettered');
      expect(handled).toHaveLength(0);

      // A well-formed own copy, and an event from the exchange, still go through.
      const retryCopy = randomUUID();
      broker.channel.sendToQueue(queue, goodBody(retryCopy), {
        messageId: 'own-copy',
        headers: { [MO_HEADER_ROUTING_KEY]: 'org_unit.it.update', [MO_HEADER_ATTEMPT]: 2 },
      });
      const fresh = randomUUID();
      publish('employee.it.create', goodBody(fresh), 'fresh');
      await until(() => handled.length === 2, 'the two good messages after the forged ones');

      const dead = await deadLetters(deadCount);
      for (const { id, attempt, body } of sent) {
        const m = dead.get(id) as GetMessage;
        expect(m).toBeDefined();
        const reason = String(m.properties.headers?.[MO_HEADER_REASON]);
        expect(reason).toContain(`header ${MO_HEADER_ATTEMPT}`);
        expect(reason).toContain('a whole number from 1 to 101');
        expect(reason).toContain(`received ${typeof attempt === 'string' ? JSON.stringify(attempt) : attempt}`);
        expect(m.content.equals(body)).toBe(true);
        expect(m.properties.headers?.[MO_HEADER_ROUTING_KEY]).toBe('employee.it.create');
      }
      expect(String(dead.get('key-not-text')?.properties.headers?.[MO_HEADER_REASON])).toContain(
        `header ${MO_HEADER_ROUTING_KEY}: received 42; allowed: a routing key (text)`,
      );
      expect(String(dead.get('key-outside-vocabulary')?.properties.headers?.[MO_HEADER_REASON])).toContain(
        'routing key: received "evil.routing.key"',
      );

      const byUuid = new Map(handled.map((e) => [e.uuid, e]));
      expect(byUuid.get(retryCopy)).toMatchObject({ routingKey: 'org_unit.it.update', redelivered: true });
      expect(byUuid.get(fresh)).toMatchObject({ routingKey: 'employee.it.create', redelivered: false });
      expect(events.counters.deadLettered).toBe(deadCount);
      await staysQuiet(events);
    },
    CASE_MS,
  );

  it(
    'dead-letters bodies that are no MO event once each, naming the field, and keeps handling good messages',
    async () => {
      const events = await bootConsumer();
      const uuid = randomUUID();
      const megabyteUuid = `{"uuid": "${'a'.repeat(1_000_000)}", "time": "2021-07-27"}`;
      const megabyteArray = JSON.stringify(Array.from({ length: 500_000 }, () => 1));
      const batches: [string, Buffer, string][][] = [
        [
          ['not-json', Buffer.from('not json'), 'body: received "not json"'],
          ['not-utf8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'body: received "4 bytes that are not UTF-8"'],
          ['array', Buffer.from(`["${uuid}", "2021-07-27"]`), 'body: received ['],
          ['empty', Buffer.alloc(0), 'body: received ""'],
        ],
        [
          [
            'bad-uuid',
            Buffer.from('{"uuid": "c390b9a2-7202", "time": "2021-07-27"}'),
            'uuid: received "c390b9a2-7202"',
          ],
          ['bad-time', Buffer.from(`{"uuid": "${uuid}", "time": "2021-02-30"}`), 'time: received "2021-02-30"'],
          ['no-time', Buffer.from(`{"uuid": "${uuid}"}`), 'time: received undefined'],
        ],
        [
          ['megabyte-uuid', Buffer.from(megabyteUuid), 'uuid: received "aaaa'],
          ['megabyte-array', Buffer.from(megabyteArray), 'body: received [1,1,1'],
        ],
      ];
      const goods: string[] = [];
      for (const [b, batch] of batches.entries()) {
        for (const [id, body] of batch) publish('employee.it.create', body, id);
        const good = randomUUID();
        goods.push(good);
        publish('org_unit.it.update', goodBody(good), `good-${b}`);
        await until(() => handled.some((e) => e.uuid === good), `the good message after batch ${b}`);
      }
      // A megabyte that is a valid event (one extra field) is accepted and handled, once.
      const bigGood = randomUUID();
      publish(
        'employee.it.delete',
        Buffer.from(JSON.stringify({ uuid: bigGood, time: '2021-07-27', padding: 'p'.repeat(1_000_000) })),
        'megabyte-good',
      );
      goods.push(bigGood);
      await until(() => handled.some((e) => e.uuid === bigGood), 'the megabyte good event');

      const all = batches.flat();
      const dead = await deadLetters(all.length);
      for (const [id, body, reason] of all) {
        const m = dead.get(id) as GetMessage;
        expect(m).toBeDefined();
        const text = String(m.properties.headers?.[MO_HEADER_REASON]);
        expect(text).toContain(reason);
        expect(text).toContain('Malformed MO event on "employee.it.create"');
        // A megabyte of poison is cut short in the reason (and in the log), not copied into it.
        expect(text.length).toBeLessThan(2_000);
        expect(m.content.equals(body)).toBe(true);
        expect(m.properties.headers?.[MO_HEADER_ROUTING_KEY]).toBe('employee.it.create');
      }
      expect(handled.map((e) => e.uuid).sort()).toEqual([...goods].sort());
      expect(events.counters.deadLettered).toBe(all.length);
      expect(Math.max(...logger.lines.map((line) => line.length))).toBeLessThan(5_000);
      await staysQuiet(events);
    },
    CASE_MS,
  );
});
