// OS2mo's AMQP subsystem (2023-) on the real broker, published as OS2mo's own code
// publishes it (pika here: json.dumps(str(uuid)), delivery mode 1, a message_id,
// one-word routing keys), read by @MoChangeSubscribe; and the delay agent beside
// that traffic, taking only the legacy three-word messages.
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import type { ConsumeMessage } from 'amqplib';
import { randomUUID } from 'node:crypto';
import {
  MO_CHANGE_OBJECT_TYPES,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MoChangeMessage,
  MoChangeObjectType,
  MoChangeSubscribe,
  MoDelayAgent,
  MoDelayAgentModule,
  MoEventsService,
} from '../../lib';
import { delayTopology } from '../../lib/delay/delay-ladder';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { DEBIAN_PYTHON, runPeer } from '../support/python';
import { rabbitmqctl } from '../support/rabbitmqctl';
import { until } from '../support/until';

/** One message for pika_peer.py send: OS2mo's subsystem, its legacy trigger, or exact bytes. */
type PikaItem =
  | { routingKey: string; change: string; messageId: string }
  | { routingKey: string; legacy: Record<string, string> }
  | { routingKey: string; base64: string; messageId?: string };

/** Publishes `items` with pika, confirmed; resolves with the bytes of each body sent. */
async function pikaSend(exchange: string, items: PikaItem[]): Promise<Buffer[]> {
  const { bodies } = await runPeer<{ bodies: string[] }>(
    DEBIAN_PYTHON,
    'pika_peer.py',
    ['send', BROKER_URL, exchange],
    items,
  );
  return bodies.map((b) => Buffer.from(b, 'base64'));
}

/** Time text `ms` from now as OS2mo writes it (isoformat of an aware datetime, +02:00), and its instant. */
function aheadCph(ms: number): { text: string; due: number } {
  const due = Date.now() + ms;
  const wall = new Date(due + 2 * 3600_000).toISOString(); // 2021-07-27T10:00:00.123Z
  return { text: wall.replace(/\.(\d{3})Z$/, '.$1000+02:00'), due };
}

let broker: TestBroker;
let app: TestingModule | undefined;

beforeEach(async () => {
  broker = await TestBroker.connect();
});

afterEach(async () => {
  await app?.close();
  app = undefined;
  await broker.close();
});

describe('OS2mo’s AMQP-subsystem messages (pika, json.dumps(str(uuid)), delivery mode 1) to @MoChangeSubscribe', () => {
  it('receives every object type, each validated, on a queue bound to all (*) and one bound to several', async () => {
    const exchange = uniqueName('os2mo');
    const all = uniqueName('changes');
    const some = uniqueName('some');
    for (const q of [all, `${all}.dlq`, some, `${some}.dlq`]) broker.trackQueue(q);
    broker.track(exchange);
    const several: MoChangeObjectType[] = ['engagement', 'person', 'rolebinding', 'role'];
    const everything: MoChangeMessage[] = [];
    const chosen: MoChangeMessage[] = [];
    @Injectable()
    class Integration {
      @MoChangeSubscribe({ queue: all })
      async any(change: MoChangeMessage) {
        everything.push(change);
      }

      @MoChangeSubscribe({ queue: some, objectType: several })
      async those(change: MoChangeMessage) {
        chosen.push(change);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Integration] });
    const wire = await broker.collect(exchange, '*'); // what went over the wire, as pika sent it

    // The 15 object types of OS2mo's head, and role, its word for rolebinding before 2024-03-14.
    expect(MO_CHANGE_OBJECT_TYPES).toHaveLength(16);
    const sent = MO_CHANGE_OBJECT_TYPES.map((routingKey) => ({
      routingKey,
      change: randomUUID(),
      messageId: randomUUID(),
    }));
    const bodies = await pikaSend(exchange, sent);
    expect(bodies.map((b) => b.toString('latin1'))).toEqual(sent.map((s) => `"${s.change}"`));

    await until(() => everything.length === 16 && chosen.length === 4, 'every change', 15_000);
    await wire.waitFor(16);
    await new Promise((resolve) => setTimeout(resolve, 300)); // nothing more comes
    expect(everything).toHaveLength(16);
    expect(chosen.map((c) => c.objectType).sort()).toEqual([...several].sort());
    for (const change of [...everything, ...chosen]) {
      const original = sent.find((s) => s.routingKey === change.routingKey)!;
      expect(change).toEqual({
        objectType: original.routingKey,
        uuid: original.change,
        routingKey: original.routingKey,
        messageId: original.messageId,
        redelivered: false,
      });
    }
    for (const message of wire.messages) {
      expect(message.properties).toMatchObject({ deliveryMode: 1, contentType: undefined });
      expect(message.properties.messageId).toBe(
        sent.find((s) => s.routingKey === message.fields.routingKey)!.messageId,
      );
    }
    expect(await broker.depth(`${all}.dlq`)).toBe(0);
    expect(await broker.depth(`${some}.dlq`)).toBe(0);
    expect(app.get(MoEventsService).counters.deadLettered).toBe(0);
  }, 40_000);

  it('dead-letters bare text, a JSON object and an unknown one-word key, each with a reason naming the field', async () => {
    const exchange = uniqueName('os2mo');
    const all = uniqueName('changes');
    const engagements = uniqueName('engagements');
    for (const q of [all, `${all}.dlq`, engagements, `${engagements}.dlq`]) broker.trackQueue(q);
    broker.track(exchange);
    const handled: MoChangeMessage[] = [];
    @Injectable()
    class Integration {
      @MoChangeSubscribe({ queue: all })
      async any(change: MoChangeMessage) {
        handled.push(change);
      }

      @MoChangeSubscribe({ queue: engagements, objectType: 'engagement' })
      async engagement(change: MoChangeMessage) {
        handled.push(change);
      }
    }
    app = await bootApp(
      { enabled: true, url: BROKER_URL, exchange },
      { providers: [Integration], logger: new CapturingLogger() },
    );

    const uuid = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
    const ids = { bare: randomUUID(), object: randomUUID(), unknown: randomUUID(), good: randomUUID() };
    await pikaSend(exchange, [
      { routingKey: 'engagement', base64: Buffer.from(uuid).toString('base64'), messageId: ids.bare },
      {
        routingKey: 'engagement',
        base64: Buffer.from(`{"uuid": "${uuid}"}`).toString('base64'),
        messageId: ids.object,
      },
      { routingKey: 'employee', change: uuid, messageId: ids.unknown }, // a legacy word, not a subsystem one
      { routingKey: 'engagement', change: uuid, messageId: ids.good },
    ]);

    await until(
      async () => (await broker.depth(`${all}.dlq`)) === 3 && (await broker.depth(`${engagements}.dlq`)) === 2,
      'the dead letters',
      15_000,
    );
    await until(() => handled.length === 2, 'the good message on both queues');
    expect(handled.map((c) => c.messageId)).toEqual([ids.good, ids.good]);

    const reasons = async (queue: string) =>
      Object.fromEntries(
        (await broker.drain(`${queue}.dlq`)).map((m) => {
          expect(m.properties.headers?.[MO_HEADER_QUEUE]).toBe(queue);
          return [m.properties.messageId as string, String(m.properties.headers?.[MO_HEADER_REASON])];
        }),
      );
    const fromAll = await reasons(all);
    const fromEngagements = await reasons(engagements);
    expect(Object.keys(fromAll).sort()).toEqual([ids.bare, ids.object, ids.unknown].sort());
    expect(Object.keys(fromEngagements).sort()).toEqual([ids.bare, ids.object].sort());
    for (const found of [fromAll, fromEngagements]) {
      expect(found[ids.bare]).toMatch(new RegExp(`^Malformed MO event on "engagement": body: received "${uuid}"`));
      expect(found[ids.bare]).toContain('a JSON string holding the object');
      expect(found[ids.object]).toMatch(/^Malformed MO event on "engagement": body: received /);
      expect(found[ids.object]).toContain(uuid);
    }
    expect(fromAll[ids.unknown]).toMatch(/^Malformed MO event on "employee": routing key: received "employee"/);
    expect(fromAll[ids.unknown]).toContain('rolebinding');
    expect(app.get(MoEventsService).counters.deadLettered).toBe(5);
  }, 40_000);
});

describe('the delay agent beside OS2mo’s mixed traffic (legacy trigger and AMQP subsystem on one exchange)', () => {
  it('delays every legacy message, not early; takes no subsystem message; its DLQ stays empty; drops an old # binding', async () => {
    const exchange = uniqueName('os2mo');
    const delayedExchange = uniqueName('delayed');
    const prefix = uniqueName('agent');
    const t = delayTopology(prefix);
    broker.trackDelayAgent(prefix);
    broker.track(exchange);

    // An agent of an earlier version bound its incoming queue #.
    await broker.channel.assertExchange(exchange, 'topic', { durable: true });
    await broker.channel.assertQueue(t.incoming, { durable: true });
    await broker.channel.bindQueue(t.incoming, exchange, '#');

    const arrived = new Map<string, number>();
    const delayed = await broker.collect(delayedExchange, '#');
    const push = delayed.push.bind(delayed);
    delayed.push = (message: ConsumeMessage) => {
      arrived.set(JSON.parse(message.content.toString()).uuid ?? message.content.toString(), Date.now());
      push(message);
    };
    const subsystem = await broker.collect(exchange, '*');

    app = await bootApp(
      { enabled: true, url: BROKER_URL, exchange, delayedExchange, vocabulary: 'os2mo' },
      { imports: [MoDelayAgentModule.forRoot({ prefix })], logger: new CapturingLogger() },
    );

    const bindings = JSON.parse(
      await rabbitmqctl('list_bindings', '-q', '--formatter', 'json', 'source_name', 'destination_name', 'routing_key'),
    ) as { source_name: string; destination_name: string; routing_key: string }[];
    const incoming = bindings.filter((b) => b.destination_name === t.incoming && b.source_name === exchange);
    expect(incoming.map((b) => b.routing_key).sort()).toEqual(['employee.*.*', 'org_unit.*.*']);

    const legacyKeys = [
      'employee.rolebinding.create',
      'org_unit.rolebinding.edit',
      'employee.engagement.edit',
      'org_unit.engagement.edit',
      'employee.it.terminate',
      'org_unit.org_unit.refresh',
      'employee.employee.create',
      'org_unit.kle.create',
      'org_unit.owner.edit',
      'employee.rolebinding.terminate',
    ];
    const legacy = legacyKeys.map((routingKey, i) => {
      const { text, due } = aheadCph(2_500 + (i % 4) * 500);
      const uuid = randomUUID();
      return { routingKey, uuid, due, item: { routingKey, legacy: { uuid, object_uuid: randomUUID(), time: text } } };
    });
    const changes = MO_CHANGE_OBJECT_TYPES.map((routingKey) => ({
      routingKey,
      change: randomUUID(),
      messageId: randomUUID(),
    }));
    // Interleaved, as OS2mo sends both beside each other.
    const items: PikaItem[] = [];
    for (let i = 0; i < Math.max(legacy.length, changes.length); i++) {
      if (legacy[i]) items.push(legacy[i].item);
      if (changes[i]) items.push(changes[i]);
    }
    await pikaSend(exchange, items);

    await subsystem.waitFor(changes.length);
    await delayed.waitFor(legacy.length, 15_000);
    const agent = app.get(MoDelayAgent);
    await until(() => agent.stats.forwarded === legacy.length, 'the forwards to be counted');
    await new Promise((resolve) => setTimeout(resolve, 500)); // nothing more comes

    expect(delayed.messages.map((m) => m.fields.routingKey).sort()).toEqual([...legacyKeys].sort());
    for (const { uuid, due } of legacy) {
      expect(arrived.has(uuid)).toBe(true);
      expect((arrived.get(uuid) as number) - due).toBeGreaterThanOrEqual(0); // not early
    }
    for (const message of delayed.messages) expect(message.fields.routingKey.split('.')).toHaveLength(3);
    expect(agent.stats).toMatchObject({ forwarded: legacy.length, deadLettered: 0 });
    expect(await broker.depth(t.deadLetter)).toBe(0);
    expect(await broker.depth(t.incoming)).toBe(0);
  }, 40_000);
});
