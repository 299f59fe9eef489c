import { RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import type { ConsumeMessage } from 'amqplib';
import { randomUUID } from 'node:crypto';
import {
  MO_HEADER_REASON,
  MoAmqpConnectionError,
  MoEventDecoratorError,
  MoEventMessage,
  MoEventParseError,
  MoEventSubscribe,
  MoEventsService,
  allMoRoutingKeys,
  parseMoEvent,
} from '../../lib';
import { QUORUM_DELIVERY_LIMIT } from '../../lib/subscribing/subscriptions';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

describe('@MoEventSubscribe against RabbitMQ', () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;
  let exchange: string;
  let logger: CapturingLogger;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('consume');
    broker.track(exchange);
    logger = new CapturingLogger();
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
  });

  function queueFor(name: string): string {
    const queue = uniqueName(name);
    broker.trackQueue(queue);
    broker.trackQueue(`${queue}.dlq`);
    return queue;
  }

  it('hands typed events of its binding only to the handler', async () => {
    const queue = queueFor('typed');
    const received: MoEventMessage[] = [];
    @Injectable()
    class Payroll {
      @MoEventSubscribe({ queue, objectType: 'engagement' })
      async onEngagement(event: MoEventMessage) {
        received.push(event);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Payroll], logger });
    const events = app.get(MoEventsService);
    const objectUuid = randomUUID();
    const sent = await events.publish('employee', 'engagement', 'create', UUID, {
      time: '2021-07-27T00:00:00+02:00',
      objectUuid,
    });
    await events.publish('employee', 'address', 'create', UUID); // another binding: not for us
    await events.publish('org_unit', 'engagement', 'delete', UUID, { time: '2021-08-01' });
    await until(() => received.length === 2, 'two engagement events');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toEqual([
      {
        uuid: UUID,
        time: new Date('2021-07-26T22:00:00Z'),
        timeText: '2021-07-27T00:00:00+02:00',
        routingKey: 'employee.engagement.create',
        service: 'employee',
        objectType: 'engagement',
        action: 'create',
        objectUuid,
        messageId: sent.messageId,
        redelivered: false,
      },
      // A bare date is published as midnight in the configured zone (UTC here).
      expect.objectContaining({ routingKey: 'org_unit.engagement.delete', timeText: '2021-08-01T00:00:00+00:00' }),
    ]);
  });

  it('dead-letters every kind of malformed message with a reason, and handles the good ones around them', async () => {
    const queue = queueFor('poison');
    const handled: string[] = [];
    @Injectable()
    class Consumer {
      @MoEventSubscribe({ queue })
      async onEvent(event: MoEventMessage) {
        handled.push(event.uuid);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Consumer], logger });
    const good = (i: number) =>
      `{"uuid": "00000000-0000-4000-8000-${String(i).padStart(12, '0')}", "time": "2021-07-27"}`;
    const bad: [string, string | Buffer, string][] = [
      ['employee.it.create', 'not json', 'body'],
      ['employee.it.create', Buffer.from([0xff, 0xfe]), 'UTF-8'],
      ['employee.it.create', '', 'body'],
      ['employee.it.create', `["${UUID}"]`, 'a JSON object'],
      ['employee.it.create', 'null', 'a JSON object'],
      ['employee.it.create', '{"time": "2021-07-27"}', 'uuid'],
      ['employee.it.create', '{"uuid": "c390b9a2", "time": "2021-07-27"}', 'uuid'],
      ['employee.it.create', `{"uuid": "${UUID}"}`, 'time'],
      ['employee.it.create', `{"uuid": "${UUID}", "time": "2021-02-30"}`, 'time'],
      ['employee.it.create', `{"uuid": "${UUID}", "time": "2021-07-27", "object_uuid": 7}`, 'object_uuid'],
      ['employee.person.create', good(99), 'routing key'],
      ['employee.it.remove', good(98), 'routing key'],
    ];
    const publish = (key: string, body: string | Buffer, id: string) =>
      broker.channel.publish(exchange, key, Buffer.isBuffer(body) ? body : Buffer.from(body), {
        messageId: id,
        persistent: true,
      });
    let n = 0;
    for (const [key, body] of bad) {
      publish('employee.it.create', good(n), `good-${n}`);
      n++;
      publish(key, body, `bad-${key}-${n}`);
    }
    publish('org_unit.role.update', good(n), `good-${n}`);
    n++;

    await until(() => handled.length === n, `${n} good events`);
    const dlq = `${queue}.dlq`;
    let dead: Awaited<ReturnType<TestBroker['drain']>> = [];
    await until(() => {
      void broker.channel.checkQueue(dlq).then((q) => (dead = q.messageCount as never));
      return (dead as unknown as number) === bad.length;
    }, `${bad.length} dead-lettered messages`);
    const messages = await broker.drain(dlq);
    expect(messages).toHaveLength(bad.length);
    messages.forEach((m, i) => {
      const [key, body, reason] = bad[i];
      expect(m.content.equals(Buffer.isBuffer(body) ? body : Buffer.from(body))).toBe(true);
      expect(m.properties.headers?.[MO_HEADER_REASON]).toContain(reason);
      expect(m.properties.headers?.['x-mo-amqp-routing-key']).toBe(key);
    });
    expect(handled).toHaveLength(n);
    expect(app.get(MoEventsService).counters.deadLettered).toBe(bad.length);
  });

  it('retries a handler that throws, then dead-letters the message after the bound, and keeps consuming', async () => {
    const queue = queueFor('flaky');
    const calls: { uuid: string; redelivered: boolean }[] = [];
    @Injectable()
    class Flaky {
      @MoEventSubscribe({ queue, retries: 2, retryDelayMs: 0 })
      async onEvent(event: MoEventMessage) {
        calls.push({ uuid: event.uuid, redelivered: event.redelivered });
        const failuresSoFar = calls.filter((c) => c.uuid === event.uuid).length;
        if (event.uuid === UUID) throw new Error('always fails');
        if (failuresSoFar === 1) throw new Error('fails once');
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Flaky], logger });
    const events = app.get(MoEventsService);
    const other = randomUUID();
    await events.publish('employee', 'it', 'create', UUID);
    await events.publish('employee', 'it', 'update', other);
    await until(() => calls.length === 5, 'three calls for the failing event and two for the flaky one');
    const [dead] = await (async () => {
      let got: Awaited<ReturnType<TestBroker['drain']>> = [];
      await until(() => {
        void broker.drain(`${queue}.dlq`).then((m) => (got = got.concat(m)));
        return got.length > 0;
      }, 'the dead-lettered event');
      return got;
    })();
    expect(dead.properties.headers?.[MO_HEADER_REASON]).toBe(
      'the handler failed 3 times; last error: Error: always fails',
    );
    expect(calls.filter((c) => c.uuid === UUID).map((c) => c.redelivered)).toEqual([false, true, true]);
    expect(calls.filter((c) => c.uuid === other).map((c) => c.redelivered)).toEqual([false, true]);
    // Still consuming.
    await events.publish('employee', 'it', 'delete', other);
    await until(() => calls.length === 6, 'the next event');
  });

  it('retries after a wait that doubles, held by the broker in <queue>.retry, while the consumer goes on', async () => {
    const queue = queueFor('backoff');
    const calls: { uuid: string; at: number }[] = [];
    @Injectable()
    class Slow {
      @MoEventSubscribe({ queue, retries: 2, retryDelayMs: 400, prefetch: 1 })
      async onEvent(event: MoEventMessage) {
        calls.push({ uuid: event.uuid, at: Date.now() });
        if (event.uuid === UUID) throw new Error('downstream is down');
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Slow], logger });
    const events = app.get(MoEventsService);
    await events.publish('employee', 'it', 'create', UUID);
    await until(() => calls.length === 1, 'the first try');
    // While it waits, the broker holds it (not the consumer: prefetch 1 would block) and others go through.
    await until(async () => (await broker.channel.checkQueue(`${queue}.retry`)).messageCount === 1, 'the wait');
    const other = randomUUID();
    await events.publish('employee', 'it', 'update', other);
    await until(() => calls.some((c) => c.uuid === other), 'the other event, during the wait');
    await until(() => calls.filter((c) => c.uuid === UUID).length === 3, 'three tries', 10_000);
    const tries = calls.filter((c) => c.uuid === UUID).map((c) => c.at);
    expect(tries[1] - tries[0]).toBeGreaterThanOrEqual(400);
    expect(tries[2] - tries[1]).toBeGreaterThanOrEqual(800);
    const dead = await broker.drain(`${queue}.dlq`);
    await until(async () => dead.push(...(await broker.drain(`${queue}.dlq`))) > 0, 'the dead-letter');
    expect(dead[0].properties.headers?.[MO_HEADER_REASON]).toBe(
      'the handler failed 3 times; last error: Error: downstream is down',
    );
    expect((await broker.channel.checkQueue(`${queue}.retry`)).messageCount).toBe(0);
  });

  it('binds *.*.* when no word is given: every one of the 60 routing keys arrives', async () => {
    const queue = queueFor('all');
    const keys = new Set<string>();
    @Injectable()
    class All {
      @MoEventSubscribe({ queue, prefetch: 50 })
      async onEvent(event: MoEventMessage) {
        keys.add(event.routingKey);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [All], logger });
    const events = app.get(MoEventsService);
    await Promise.all(
      allMoRoutingKeys().map((key) => {
        const [s, o, a] = key.split('.') as never[];
        return events.publish(s, o, a, UUID);
      }),
    );
    await until(() => keys.size === 60, 'all 60 routing keys');
  });

  it('consumes the delayed exchange one option away, from a quorum queue', async () => {
    const queue = queueFor('delayed');
    const delayedExchange = uniqueName('delayed');
    broker.track(delayedExchange);
    const received: string[] = [];
    @Injectable()
    class Later {
      @MoEventSubscribe({ queue, delayed: true, queueType: 'quorum', service: 'org_unit' })
      async onDue(event: MoEventMessage) {
        received.push(event.routingKey);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange, delayedExchange }, { providers: [Later], logger });
    const body = Buffer.from(`{"uuid": "${UUID}", "time": "2021-07-27"}`);
    broker.channel.publish(delayedExchange, 'org_unit.manager.create', body);
    broker.channel.publish(delayedExchange, 'employee.manager.create', body);
    broker.channel.publish(exchange, 'org_unit.manager.update', body); // the events exchange: not bound
    await until(() => received.length === 1, 'the delayed event');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toEqual(['org_unit.manager.create']);
    // It is a quorum queue: declaring it as a classic one is refused.
    const channel = await broker.connection.createChannel();
    channel.on('error', () => undefined);
    await expect(
      channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'classic' } }),
    ).rejects.toThrow(/PRECONDITION_FAILED/);
  });

  it('declares a quorum queue that dead-letters a message consumers keep dying on, after 10 deliveries', async () => {
    const queue = queueFor('poison');
    @Injectable()
    class Never {
      @MoEventSubscribe({ queue, queueType: 'quorum' })
      async onEvent() {}
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Never], logger });
    await app.close(); // the queue stays; the test's channel plays the consumer that dies
    app = undefined;
    const body = Buffer.from(`{"uuid": "${UUID}", "time": "2021-07-27"}`);
    broker.channel.sendToQueue(queue, body, { persistent: true, messageId: 'poison' });
    const handedOut = await broker.returnUntilDeadLettered(queue, `${queue}.dlq`);
    expect(handedOut).toBe(QUORUM_DELIVERY_LIMIT + 1);
    const [dead] = await broker.drain(`${queue}.dlq`);
    expect(dead.content).toEqual(body);
    expect(dead.properties.messageId).toBe('poison');
  });

  it('handles no more messages at once than its prefetch', async () => {
    const queue = queueFor('prefetch');
    let running = 0;
    let most = 0;
    let done = 0;
    @Injectable()
    class Slow {
      @MoEventSubscribe({ queue, prefetch: 3 })
      async onEvent() {
        most = Math.max(most, ++running);
        await new Promise((resolve) => setTimeout(resolve, 50));
        running--;
        done++;
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Slow], logger });
    const events = app.get(MoEventsService);
    await Promise.all(Array.from({ length: 12 }, () => events.publish('employee', 'leave', 'create', UUID)));
    await until(() => done === 12, 'twelve handled');
    expect(most).toBe(3);
  });

  it('gives plain @RabbitSubscribe handlers the same typed event, or a clear error, through parseMoEvent', async () => {
    const queue = queueFor('plain');
    const outcomes: (MoEventMessage | MoEventParseError)[] = [];
    @Injectable()
    class Plain {
      @RabbitSubscribe({ exchange, routingKey: '#', queue, allowNonJsonMessages: true })
      handle(payload: unknown, message: ConsumeMessage) {
        try {
          outcomes.push(parseMoEvent(payload, message));
        } catch (err) {
          outcomes.push(err as MoEventParseError);
        }
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Plain], logger });
    await app.get(MoEventsService).publish('employee', 'role', 'create', UUID);
    broker.channel.publish(exchange, 'employee.role.update', Buffer.from('{"uuid": "x", "time": "2021-07-27"}'));
    await until(() => outcomes.length === 2, 'two deliveries');
    expect(outcomes[0]).toMatchObject({ uuid: UUID, routingKey: 'employee.role.create' });
    expect(outcomes[1]).toBeInstanceOf(MoEventParseError);
    expect((outcomes[1] as MoEventParseError).field).toBe('uuid');
  });

  it('refuses to start with a bad word, a queue used twice, or a queue that exists with other arguments', async () => {
    const queue = queueFor('conflict');
    @Injectable()
    class BadWord {
      @MoEventSubscribe({ queue, objectType: '#' as never })
      async onEvent() {}
    }
    let err = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [BadWord], logger }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(MoEventDecoratorError);
    expect(err.message).toContain('@MoEventSubscribe on BadWord.onEvent: object type "#" is not one of address');

    @Injectable()
    class Twice {
      @MoEventSubscribe({ queue })
      async a() {}
      @MoEventSubscribe({ queue })
      async b() {}
    }
    err = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Twice], logger }).catch((e) => e);
    expect(err.message).toContain(`queue "${queue}" is already consumed by Twice.a`);

    await broker.channel.assertQueue(queue, { durable: true });
    @Injectable()
    class Conflict {
      @MoEventSubscribe({ queue })
      async onEvent() {}
    }
    err = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Conflict], logger }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect(err.message).toContain('PRECONDITION_FAILED');
    expect(err.message).toContain('must be deleted or renamed');
  });

  it('at shutdown takes nothing new and finishes what it holds, before publishing stops', async () => {
    const queue = queueFor('graceful');
    const started: number[] = [];
    const finished: number[] = [];
    let closing = 0;
    const statuses: string[] = [];
    @Injectable()
    class Slow {
      constructor(private readonly events: MoEventsService) {}

      // employee.*.*: the org_unit events it publishes itself do not come back to it.
      @MoEventSubscribe({ queue, service: 'employee', prefetch: 3 })
      async onEvent(event: MoEventMessage) {
        started.push(Date.now());
        await new Promise((resolve) => setTimeout(resolve, 300));
        // Publishing still works for a handler finishing during shutdown.
        const result = await this.events.publish('org_unit', 'it', 'update', event.uuid);
        statuses.push(result.status);
        finished.push(Date.now());
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Slow], logger });
    const events = app.get(MoEventsService);
    for (let i = 0; i < 12; i++) await events.publish('employee', 'it', 'create', UUID);
    await until(() => started.length >= 3, 'the first three handled');
    closing = Date.now();
    await app.close();
    app = undefined;

    expect(started.every((t) => t < closing)).toBe(true); // nothing new once closing began
    expect(finished.length).toBe(started.length); // and what was in hand was finished
    expect(statuses).toEqual(started.map(() => 'confirmed'));
    // The rest waits in the queue for the next consumer: handled + waiting = all.
    expect(started.length + (await broker.depth(queue))).toBe(12);
  });
});
