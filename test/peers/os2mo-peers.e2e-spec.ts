// The package among the real system's peers, on the real broker: OS2mo 2021+
// publishing with pika (json.dumps bodies, no properties at all), the seed's own
// consumer script (a non-durable exchange_declare), the original delay agent's
// non-durable exchange, and a RabbitMQ user without configure permission.
import { RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Injectable, Type } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import type { ConsumeMessage } from 'amqplib';
import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  MO_HEADER_REASON,
  MoAmqpConnectionError,
  MoAmqpModule,
  MoDelayAgentModule,
  MoEventMessage,
  MoEventSubscribe,
  MoEventsService,
  allMoRoutingKeys,
  parseMoEvent,
} from '../../lib';
import { delayTopology } from '../../lib/delay/delay-ladder';
import { bootApp, testSpoolDir, withEnv } from '../support/app';
import { BROKER, BROKER_URL, Collector, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { DEBIAN_PYTHON, PEERS, runPeer } from '../support/python';
import { addUser } from '../support/rabbitmqctl';
import { until } from '../support/until';

const ORDERS = [
  ['uuid', 'object_uuid', 'time'], // OS2mo's and ramqp's
  ['time', 'uuid', 'object_uuid'],
  ['object_uuid', 'time', 'uuid'],
];

/** Runs pika_peer.py; resolves with its exit code, stdout and stderr. */
function pika(
  args: string[],
  input?: unknown,
): { child: ChildProcess; done: Promise<{ code: number; out: string; err: string }> } {
  const child = spawn(DEBIAN_PYTHON, [join(PEERS, 'pika_peer.py'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  child.stdin?.end(input === undefined ? '' : JSON.stringify(input));
  const done = new Promise<{ code: number; out: string; err: string }>((resolve) =>
    child.on('close', (code) => resolve({ code: code ?? -1, out, err })),
  );
  return { child, done };
}

/** The seed's consumer script, started and bound before it resolves. */
/** The seed's binding, "#.#.#", which RabbitMQ 4.3 refuses (more than two "#"); "#" matches the same. */
const SEED_BINDING = '#.#.#';
const SEED_BINDING_TAKEN = BROKER.version === '4.3' ? '#' : SEED_BINDING;

async function seedConsumer(exchange: string, count: number, binding = SEED_BINDING_TAKEN) {
  const peer = pika(['consume', BROKER_URL, exchange, String(count), '10', binding]);
  let stderr = '';
  peer.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await until(
    () => stderr.includes('Waiting for messages') || peer.child.exitCode !== null,
    'the seed consumer',
    10_000,
  );
  return peer;
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

describe('OS2mo 2021+ publishing (pika, json.dumps, no properties) to this package’s readers', () => {
  it.each(['seed', 'os2mo'] as const)(
    'consumes all 104 routing keys (rolebinding included) with object_uuid in any position, in the %s vocabulary; the agent forwards them',
    async (vocabulary) => {
      const exchange = uniqueName('os2mo');
      const delayedExchange = uniqueName('delayed');
      const prefix = uniqueName('agent');
      const queue = uniqueName('all');
      const edits = uniqueName('edits');
      const plainQueue = uniqueName('plain');
      for (const q of [queue, `${queue}.dlq`, edits, `${edits}.dlq`, plainQueue]) broker.trackQueue(q);
      broker.trackDelayAgent(prefix);
      const delayed = await broker.collect(delayedExchange, '#');
      broker.track(exchange);

      const typed: MoEventMessage[] = [];
      const edited: MoEventMessage[] = [];
      const parsed: MoEventMessage[] = [];
      @Injectable()
      class Integration {
        @MoEventSubscribe({ queue })
        async all(event: MoEventMessage) {
          typed.push(event);
        }

        @MoEventSubscribe({ queue: edits, action: 'edit' })
        async onEdit(event: MoEventMessage) {
          edited.push(event);
        }

        @RabbitSubscribe({ exchange, routingKey: '#', queue: plainQueue, allowNonJsonMessages: true })
        plain(payload: unknown, message: ConsumeMessage) {
          parsed.push(parseMoEvent(payload, message));
        }
      }
      app = await bootAgentApp({ enabled: true, url: BROKER_URL, exchange, delayedExchange, vocabulary }, prefix, [
        Integration,
      ]);

      const keys = allMoRoutingKeys('os2mo');
      const sent = keys.map((routingKey, i) => ({
        routingKey,
        uuid: randomUUID(),
        objectUuid: randomUUID(),
        time: '2021-07-27T00:00:00+02:00', // OS2mo's: midnight Copenhagen, past, so due at once
        order: ORDERS[i % ORDERS.length],
      }));
      const published = await pika(['publish', BROKER_URL, exchange], sent).done;
      expect(published).toMatchObject({ code: 0 });

      // 2 services x 13 object types (OS2mo 2021+'s twelve and rolebinding) x 4 actions.
      expect(keys).toHaveLength(104);
      expect(keys.filter((key) => key.includes('.rolebinding.'))).toHaveLength(8);
      await until(() => typed.length === 104 && parsed.length === 104 && edited.length === 26, 'every event', 15_000);
      await delayed.waitFor(104, 15_000);
      await new Promise((resolve) => setTimeout(resolve, 300)); // nothing more comes
      expect(typed.map((e) => e.routingKey).sort()).toEqual([...keys].sort());
      expect(parsed.map((e) => e.routingKey).sort()).toEqual([...keys].sort());
      expect(edited.map((e) => e.action)).toEqual(Array(26).fill('edit'));
      for (const event of typed) {
        const original = sent.find((s) => s.routingKey === event.routingKey)!;
        expect(event).toMatchObject({
          uuid: original.uuid,
          objectUuid: original.objectUuid,
          timeText: '2021-07-27T00:00:00+02:00',
          time: new Date('2021-07-26T22:00:00Z'),
          redelivered: false,
        });
        expect(event.messageId).toBeUndefined(); // OS2mo set no properties
      }
      expect(app.get(MoEventsService).counters.deadLettered).toBe(0);
      expect(await broker.depth(`${queue}.dlq`)).toBe(0);
      expect(await broker.depth(`${edits}.dlq`)).toBe(0);
      expect(await broker.depth(delayTopology(prefix).deadLetter)).toBe(0);
      // The delayed copies: identical bytes, and still no properties.
      for (const message of delayed.messages) {
        const original = sent.find((s) => s.routingKey === message.fields.routingKey)!;
        const body = JSON.parse(message.content.toString());
        expect(Object.keys(body)).toEqual(original.order);
        expect(body).toEqual({ uuid: original.uuid, object_uuid: original.objectUuid, time: original.time });
        expect(message.properties).toMatchObject({
          messageId: undefined,
          deliveryMode: undefined,
          contentType: undefined,
        });
      }
    },
    60_000,
  );
});

describe('bodies ramqp’s pydantic model refuses (it would requeue them for ever), sent with pika', () => {
  const uuid = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
  const object = '5e2a5b2b-8d5e-4c1e-9a53-0b8c2f3d4e5f';
  // As json.dumps writes them (the BOM case is the one OS2mo never sent: someone's hand-made copy).
  const body = (fields: Record<string, string>) =>
    Buffer.from(
      `{${Object.entries(fields)
        .map(([key, value]) => `"${key}": "${value}"`)
        .join(', ')}}`,
    );
  const good = { uuid, object_uuid: object, time: '2021-07-27T00:00:00+02:00' };
  const cases = {
    good: body(good),
    bom: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body(good)]),
    noObjectUuid: body({ uuid, time: good.time }),
    bareDate: body({ ...good, time: '2021-07-27' }),
    offsetSeconds: body({ ...good, time: '2021-07-27T00:00:00+02:00:00' }),
  };

  it.each([
    {
      vocabulary: 'os2mo',
      does: 'dead-letters the four (BOM, no object_uuid, bare date, offset with seconds), naming the field; handles the good one',
    },
    { vocabulary: 'seed', does: 'handles all five: the refusals are the os2mo vocabulary’s' },
  ] as const)(
    'in the $vocabulary vocabulary a @MoEventSubscribe consumer $does',
    async ({ vocabulary }) => {
      const exchange = uniqueName('os2mo');
      const queue = uniqueName('ramqp');
      broker.track(exchange);
      broker.trackQueue(queue);
      broker.trackQueue(`${queue}.dlq`);
      const handled: MoEventMessage[] = [];
      @Injectable()
      class Integration {
        @MoEventSubscribe({ queue, objectType: 'engagement' })
        async engagement(event: MoEventMessage) {
          handled.push(event);
        }
      }
      app = await bootApp(
        { enabled: true, url: BROKER_URL, exchange, vocabulary },
        { providers: [Integration], logger: new CapturingLogger() },
      );
      const ids = Object.fromEntries(Object.keys(cases).map((name) => [name, randomUUID()]));
      await runPeer(
        DEBIAN_PYTHON,
        'pika_peer.py',
        ['send', BROKER_URL, exchange],
        Object.entries(cases).map(([name, bytes]) => ({
          routingKey: 'employee.engagement.edit',
          base64: bytes.toString('base64'),
          messageId: ids[name],
        })),
      );
      if (vocabulary === 'seed') {
        await until(() => handled.length === 5, 'all five handled');
        expect(await broker.depth(`${queue}.dlq`)).toBe(0);
        return;
      }
      await until(async () => (await broker.depth(`${queue}.dlq`)) === 4, 'four dead letters', 15_000);
      await until(() => handled.length === 1, 'the good one handled');
      expect(handled[0]).toMatchObject({ messageId: ids.good, uuid, objectUuid: object, timeText: good.time });
      const reasons = Object.fromEntries(
        (await broker.drain(`${queue}.dlq`)).map((m) => [
          m.properties.messageId as string,
          String(m.properties.headers?.[MO_HEADER_REASON]),
        ]),
      );
      const prefix = 'Malformed MO event on "employee.engagement.edit": ';
      expect(reasons[ids.bom]).toContain(`${prefix}body: received "a UTF-8 byte-order mark (EF BB BF)`);
      expect(reasons[ids.noObjectUuid]).toContain(`${prefix}object_uuid: received undefined`);
      expect(reasons[ids.bareDate]).toContain(`${prefix}time: received "2021-07-27"`);
      expect(reasons[ids.offsetSeconds]).toContain(`${prefix}time: received "2021-07-27T00:00:00+02:00:00"`);
      for (const reason of Object.values(reasons)) expect(reason).toContain('AMQP__VOCABULARY=os2mo: what ramqp reads');
      expect(Object.keys(reasons)).toHaveLength(4);
      expect(app.get(MoEventsService).counters.deadLettered).toBe(4);
    },
    40_000,
  );
});

describe('exchanges shared with peers that declare them non-durable', () => {
  const refused = BROKER.version === '4.3';
  it(`the seed’s own binding #.#.#: ${refused ? 'refused by RabbitMQ 4.3, as docs/real-os2mo.md says' : `taken by RabbitMQ ${BROKER.version}`}`, async () => {
    const exchange = uniqueName('seed-binding');
    broker.track(exchange);
    const peer = await seedConsumer(exchange, 1, SEED_BINDING);
    if (refused) {
      const { code, err } = await peer.done;
      expect(code).toBe(4);
      expect(err).toContain("uses 3 '#' wildcards, at most 2 are allowed");
    } else {
      broker.channel.publish(exchange, 'employee.engagement.create', Buffer.from('{}'));
      const { code, out } = await peer.done;
      expect({ code, out }).toEqual({ code: 0, out: '[employee.engagement.create] {}\n' });
    }
  });

  it(`runs with the seed’s consumer script (non-durable exchange_declare, exclusive queue bound ${SEED_BINDING_TAKEN}) when AMQP__EXCHANGE_DURABLE=false`, async () => {
    const exchange = uniqueName('seed');
    broker.track(exchange);
    // The script first: it declares the exchange non-durable, as the seed wrote it.
    const first = await seedConsumer(exchange, 2);
    const env = {
      ENABLE_AMQP: 'true',
      AMQP__URL: BROKER_URL,
      AMQP__EXCHANGE: exchange,
      AMQP__EXCHANGE_DURABLE: 'false',
    };
    app = await withEnv({ ...env, AMQP__SPOOL_DIR: testSpoolDir() }, async () => {
      const moduleRef = await Test.createTestingModule({ imports: [MoAmqpModule.forRootAsync()] })
        .setLogger(new CapturingLogger())
        .compile();
      await moduleRef.init();
      return moduleRef;
    });
    // And a second script after the app: its declaration meets the app's, equal.
    const second = await seedConsumer(exchange, 2);
    const events = app.get(MoEventsService);
    const uuid = randomUUID();
    const a = await events.publish('employee', 'engagement', 'create', uuid, { time: '2021-07-27' });
    const b = await events.publish('org_unit', 'org_unit', 'delete', uuid, { time: '2021-08-01T00:00:00+02:00' });
    expect([a.status, b.status]).toEqual(['confirmed', 'confirmed']);
    const lines = [`[${a.routingKey}] ${a.body}`, `[${b.routingKey}] ${b.body}`];
    for (const peer of [first, second]) {
      const { code, out, err } = await peer.done;
      expect({ code, err: code === 0 ? '' : err }).toEqual({ code: 0, err: '' });
      expect(out.trim().split('\n')).toEqual(lines);
    }
    expect(await broker.channel.checkExchange(exchange)).toBeDefined();
  }, 40_000);

  it('stops at start, naming the exchange, both durabilities and the variable, when it would declare durable', async () => {
    const exchange = uniqueName('seed');
    broker.track(exchange);
    const script = await seedConsumer(exchange, 1);
    const err = await bootApp(
      { enabled: true, url: BROKER_URL, exchange, connectTimeoutMs: 5_000 },
      { logger: new CapturingLogger() },
    ).catch((e: unknown) => e);
    script.child.kill();
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect((err as Error).message).toBe(
      `RabbitMQ at ${BROKER_URL}: Exchange "${exchange}" (vhost "/") exists non-durable, and this application ` +
        'declares it durable (AMQP__EXCHANGE_DURABLE=true): set AMQP__EXCHANGE_DURABLE=false ' +
        '(option exchangeDurable: false) to share it as it is, or delete the exchange so that it is declared anew',
    );
  });

  it('shares the original delay agent’s non-durable delayed exchange, which only what uses it declares', async () => {
    const exchange = uniqueName('events');
    const delayedExchange = uniqueName('delayed');
    const prefix = uniqueName('agent');
    broker.track(exchange);
    broker.trackDelayAgent(prefix);
    const queue = uniqueName('later');
    broker.trackQueue(queue);
    broker.trackQueue(`${queue}.dlq`);
    const options = { enabled: true, url: BROKER_URL, exchange, delayedExchange, exchangeDurable: false };

    // Nothing here uses the delayed exchange: it is not declared.
    app = await bootApp(options, { logger: new CapturingLogger() });
    const probe = await broker.connection.createChannel();
    probe.on('error', () => undefined);
    await expect(probe.checkExchange(delayedExchange)).rejects.toThrow(/NOT_FOUND/);
    await app.close();

    // The original agent declared it non-durable, as OS2mo before 2022 declared os2mo.
    const collector = await broker.collect(delayedExchange, '#', { durable: false });
    const later: MoEventMessage[] = [];
    @Injectable()
    class Later {
      @MoEventSubscribe({ queue, delayed: true })
      async due(event: MoEventMessage) {
        later.push(event);
      }
    }
    app = await bootAgentApp(options, prefix, [Later]);
    const sent = await app
      .get(MoEventsService)
      .publish('employee', 'engagement', 'create', randomUUID(), { time: '2021-07-27' });
    await until(() => later.length === 1, 'the delayed copy');
    expect(later[0].messageId).toBe(sent.messageId);
    await collector.waitFor(1);
  }, 40_000);

  it('with a durable events exchange and a non-durable delayed one, works by only checking them', async () => {
    // Modern OS2mo (durable os2mo) beside the original delay agent (non-durable os2mo_delayed):
    // one durability cannot declare both; AMQP__DECLARE_EXCHANGES=false takes each as it is.
    const exchange = uniqueName('events');
    const delayedExchange = uniqueName('delayed');
    const prefix = uniqueName('agent');
    broker.trackDelayAgent(prefix);
    await broker.collect(exchange); // durable
    const delayed = await broker.collect(delayedExchange, '#', { durable: false });
    const options = { enabled: true, url: BROKER_URL, exchange, delayedExchange };

    const err = await bootAgentApp(options, prefix).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`Exchange "${delayedExchange}" (vhost "/") exists non-durable`);

    app = await bootAgentApp({ ...options, declareExchanges: false }, prefix);
    const sent = await app.get(MoEventsService).publish('org_unit', 'org_unit', 'update', randomUUID());
    const [copy] = await delayed.waitFor(1);
    expect(copy.properties.messageId).toBe(sent.messageId);
  }, 40_000);
});

/** An app with the delay agent (and `providers`), started; closed again when its start fails. */
function bootAgentApp(
  options: Parameters<typeof MoAmqpModule.forRoot>[0],
  prefix: string,
  providers: Type[] = [],
): Promise<TestingModule> {
  return bootApp(options ?? {}, {
    imports: [MoDelayAgentModule.forRoot({ prefix })],
    providers,
    logger: new CapturingLogger(),
  });
}

describe('a RabbitMQ user that may write and read but not configure', () => {
  let collector: Collector;
  let exchange: string;

  beforeEach(async () => {
    exchange = uniqueName('granted');
    collector = await broker.collect(exchange); // declared by someone allowed to: here, the test
  });

  it('starts and publishes with AMQP__DECLARE_EXCHANGES=false; is told why it cannot start otherwise', async () => {
    const user = await addUser({ configure: '^$', write: '.*', read: '.*' });
    try {
      const logger = new CapturingLogger();
      // Declaring needs configure permission: refused at once, and the error says what to set.
      const refused = await bootApp(
        { enabled: true, url: user.url, exchange, connectTimeoutMs: 5_000 },
        { logger },
      ).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(MoAmqpConnectionError);
      expect((refused as Error).message).toContain(
        `RabbitMQ user "${user.name}" may not declare exchange "${exchange}" (vhost "/"; no configure permission): ` +
          'set AMQP__DECLARE_EXCHANGES=false',
      );

      // Only checking, it starts; a missing exchange is named.
      const missing = uniqueName('missing');
      const absent = await bootApp(
        { enabled: true, url: user.url, exchange: missing, declareExchanges: false, connectTimeoutMs: 5_000 },
        { logger },
      ).catch((e: unknown) => e);
      expect(absent).toBeInstanceOf(MoAmqpConnectionError);
      expect((absent as Error).message).toContain(
        `Exchange "${missing}" does not exist in vhost "/". With AMQP__DECLARE_EXCHANGES=false this application only checks that it exists`,
      );

      app = await bootApp({ enabled: true, url: user.url, exchange, declareExchanges: false }, { logger });
      const result = await app.get(MoEventsService).publish('employee', 'engagement', 'create', randomUUID());
      expect(result.status).toBe('confirmed');
      const [message] = await collector.waitFor(1);
      expect(message.content.toString()).toBe(result.body);
      const said = `${(refused as Error).message}${(absent as Error).message}${logger.text}`;
      expect(said).not.toContain(user.password);
    } finally {
      await app?.close();
      app = undefined;
      await user.remove();
    }
  }, 60_000);

  it('publishes and consumes, retries included, with configure on its own queues only (as docs/real-os2mo.md says)', async () => {
    const prefix = uniqueName('payroll');
    const queue = `${prefix}.engagements`;
    broker.trackQueue(queue);
    broker.trackQueue(`${queue}.dlq`);
    const own = prefix.replace(/\./g, '\\.');
    const events = exchange.replace(/\./g, '\\.');
    const permissions = {
      configure: `^${own}\\..*`,
      write: `^(${events}|amq\\.default|${own}\\..*)$`,
      read: `^(${events}|${own}\\..*)$`,
    };
    // Without write on amq.default the queues cannot even be declared (their dead-lettering goes through it).
    const user = await addUser({ ...permissions, write: `^(${events}|${own}\\..*)$` });
    const handled: string[] = [];
    @Injectable()
    class Payroll {
      @MoEventSubscribe({ queue, objectType: 'engagement' })
      async onEngagement(event: MoEventMessage) {
        handled.push(event.uuid);
        if (handled.length === 1) throw new Error('once'); // a retry: a copy through the default exchange
      }
    }
    try {
      const options = { enabled: true, url: user.url, exchange, declareExchanges: false, connectTimeoutMs: 5_000 };
      const refused = await bootApp(options, { providers: [Payroll], logger: new CapturingLogger() }).catch(
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(MoAmqpConnectionError);
      expect((refused as Error).message).toContain("access to exchange 'amq.default'");
      expect((refused as Error).message).toContain('and write on amq.default');

      await user.permit(permissions);
      app = await bootApp(options, { providers: [Payroll] });
      const uuid = randomUUID();
      const service = app.get(MoEventsService);
      await service.publish('employee', 'engagement', 'create', uuid);
      // The retry copy can be handled before its own confirm has counted it.
      await until(() => handled.length === 2 && service.counters.retried === 1, 'the event, then its retry');
      expect(handled).toEqual([uuid, uuid]);
      expect(service.counters).toMatchObject({ confirmed: 1, retried: 1, deadLettered: 0 });
    } finally {
      await app?.close();
      app = undefined;
      await user.remove();
    }
  }, 60_000);
});
