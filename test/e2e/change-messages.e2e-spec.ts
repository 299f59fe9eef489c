import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import { randomUUID } from 'node:crypto';
import {
  MO_CHANGE_OBJECT_TYPES,
  MO_HEADER_REASON,
  MoChangeMessage,
  MoChangeSubscribe,
  MoEvent,
  MoEventDecoratorError,
  MoEventMessage,
  MoEventSubscribe,
  MoEventsService,
} from '../../lib';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

describe("OS2mo's AMQP subsystem and rolebinding, against RabbitMQ", () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;
  let exchange: string;
  let logger: CapturingLogger;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('change');
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
    for (const q of [queue, `${queue}.dlq`, `${queue}.retry`]) broker.trackQueue(q);
    return queue;
  }

  async function drained(queue: string, count: number) {
    let got: Awaited<ReturnType<TestBroker['drain']>> = [];
    await until(() => {
      void broker.drain(queue).then((m) => (got = got.concat(m)));
      return got.length >= count;
    }, `${count} message(s) in ${queue}`);
    return got;
  }

  it('publishChange sends exactly OS2mo’s body, persistent, and @MoChangeSubscribe reads it by object type', async () => {
    const queue = queueFor('changes');
    const received: MoChangeMessage[] = [];
    @Injectable()
    class Sync {
      @MoChangeSubscribe({ queue, objectType: ['engagement', 'rolebinding', 'role'] })
      async onChange(change: MoChangeMessage) {
        received.push(change);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Sync], logger });
    const collector = await broker.collect(exchange, '*');
    const events = app.get(MoEventsService);
    const sent = await events.publishChange('engagement', UUID.toUpperCase());
    expect(sent).toMatchObject({ status: 'confirmed', routingKey: 'engagement', body: `"${UUID}"` });
    await events.publishChange('person', randomUUID()); // not bound: not for us
    const role = randomUUID();
    await events.publishChange('role', role);
    await until(() => received.length === 2, 'two changes');
    const [raw] = await collector.waitFor(1, 3_000);
    expect(raw.content.equals(Buffer.from(`"${UUID}"`))).toBe(true);
    expect(raw.properties).toMatchObject({ deliveryMode: 2, messageId: sent.messageId });
    expect(received).toEqual([
      { objectType: 'engagement', uuid: UUID, routingKey: 'engagement', messageId: sent.messageId, redelivered: false },
      expect.objectContaining({ objectType: 'role', uuid: role }),
    ]);
    expect(await broker.depth(`${queue}.dlq`)).toBe(0);
  });

  it('retries a failing handler with back-off, then dead-letters with the reason; malformed ones at once', async () => {
    const queue = queueFor('flaky-changes');
    const calls: boolean[] = [];
    @Injectable()
    class Flaky {
      @MoChangeSubscribe({ queue, retries: 2, retryDelayMs: 100 })
      async onChange(change: MoChangeMessage) {
        if (change.uuid === UUID) {
          calls.push(change.redelivered);
          throw new Error('MO did not answer');
        }
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Flaky], logger });
    await app.get(MoEventsService).publishChange('facet', UUID);
    for (const [key, body] of [
      ['facet', UUID], // bare text: OS2mo's readers refuse it
      ['facet', `{"uuid": "${UUID}"}`],
      ['facets', `"${UUID}"`],
    ]) {
      broker.channel.publish(exchange, key, Buffer.from(body), { messageId: `${key}-${body.length}` });
    }
    const dead = await drained(`${queue}.dlq`, 4);
    const reasons = dead.map((m) => String(m.properties.headers?.[MO_HEADER_REASON]));
    expect(reasons).toEqual(
      expect.arrayContaining([
        expect.stringContaining(`body: received "${UUID}"`),
        expect.stringContaining('body: received {"uuid":'),
        expect.stringContaining('routing key: received "facets"; allowed: one word, the object type'),
        'the handler failed 3 times; last error: Error: MO did not answer',
      ]),
    );
    expect(calls).toEqual([false, true, true]);
  });

  it('@MoEvent with change feeds both generations; rolebinding events publish and are read in the os2mo vocabulary', async () => {
    const events = queueFor('legacy');
    const changes = queueFor('subsystem');
    const legacy: MoEventMessage[] = [];
    const subsystem: MoChangeMessage[] = [];
    const binding = randomUUID();
    @Injectable()
    class StandInForMo {
      @MoEvent('employee', 'rolebinding', 'create', { uuid: () => UUID, objectUuid: () => binding, change: true })
      @MoEvent('org_unit', 'rolebinding', 'create', {
        uuid: () => randomUUID(),
        objectUuid: () => binding,
        change: true,
      })
      async grant(): Promise<void> {}
    }
    @Injectable()
    class Readers {
      @MoEventSubscribe({ queue: events, objectType: 'rolebinding' })
      async onEvent(event: MoEventMessage) {
        legacy.push(event);
      }

      @MoChangeSubscribe({ queue: changes })
      async onChange(change: MoChangeMessage) {
        subsystem.push(change);
      }
    }
    app = await bootApp(
      { enabled: true, url: BROKER_URL, exchange, vocabulary: 'os2mo' },
      { providers: [StandInForMo, Readers], logger },
    );
    await app.get(StandInForMo).grant();
    await until(() => legacy.length === 2 && subsystem.length === 1, 'two events and one change');
    expect(legacy.map((e) => e.routingKey)).toEqual(['employee.rolebinding.create', 'org_unit.rolebinding.create']);
    expect(legacy.map((e) => e.objectUuid)).toEqual([binding, binding]);
    expect(subsystem).toEqual([expect.objectContaining({ objectType: 'rolebinding', uuid: binding })]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(subsystem).toHaveLength(1);
  });

  it('in the os2mo vocabulary dead-letters the bodies ramqp loops on, and handles the good one', async () => {
    const queue = queueFor('ramqp');
    const handled: string[] = [];
    @Injectable()
    class Consumer {
      @MoEventSubscribe({ queue })
      async onEvent(event: MoEventMessage) {
        handled.push(event.uuid);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange, vocabulary: 'os2mo' }, { providers: [Consumer] });
    const object = randomUUID();
    const bodies = [
      `\ufeff{"uuid": "${UUID}", "object_uuid": "${object}", "time": "2021-07-27T00:00:00+02:00"}`,
      `{"uuid": "${UUID}", "time": "2021-07-27T00:00:00+02:00"}`,
      `{"uuid": "${UUID}", "object_uuid": "${object}", "time": "2021-07-27"}`,
      `{"uuid": "${UUID}", "object_uuid": "${object}", "time": "1900-01-01T00:00:00+00:50:20"}`,
      `{"uuid": "${object}", "object_uuid": "${object}", "time": "2021-07-27T00:00:00+02:00"}`,
    ];
    for (const body of bodies) broker.channel.publish(exchange, 'employee.engagement.edit', Buffer.from(body));
    const dead = await drained(`${queue}.dlq`, 4);
    // Handled side by side (prefetch 10): in any order.
    const fields = dead.map((m) => String(m.properties.headers?.[MO_HEADER_REASON]).split(': received')[0]);
    expect(fields.map((f) => f.replace('Malformed MO event on "employee.engagement.edit": ', '')).sort()).toEqual([
      'body',
      'object_uuid',
      'time',
      'time',
    ]);
    await until(() => handled.length === 1, 'the good one');
    expect(handled).toEqual([object]);
  });

  it('refuses to start with a word outside the subsystem, naming the allowed ones', async () => {
    @Injectable()
    class Wrong {
      @MoChangeSubscribe({ queue: 'never', objectType: 'employee' as never })
      async onChange() {}
    }
    const err = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Wrong] }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MoEventDecoratorError);
    expect((err as Error).message).toContain(
      `@MoChangeSubscribe on Wrong.onChange: objectType "employee" is not one of ${MO_CHANGE_OBJECT_TYPES.join(', ')}`,
    );
  });
});
