import type { TestingModule } from '@nestjs/testing';
import type { GetMessage, Options } from 'amqplib';
import { randomUUID } from 'node:crypto';
import {
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MO_HEADER_ROUTING_KEY,
  MoAmqpConfigError,
  MoDelayAgent,
  MoDelayAgentModule,
} from '../../lib';
import {
  DUE_HEADER,
  EXCHANGE_HEADER,
  HOLD_SLOTS,
  META_HEADER,
  ROUTING_KEY_HEADER,
  delayTopology,
} from '../../lib/delay/delay-ladder';
import { bootApp } from '../support/app';
import { BROKER_URL, Collector, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';

/**
 * The delay agent's own `x-mo-delay-*` headers steer where and when it
 * republishes. Nothing from outside may steer it: such a message is
 * dead-lettered once with the header named, never forwarded, never requeued.
 */

const CASE_MS = 15_000;
/** How long a case watches, after the dead-letters, for anything coming round again. */
const QUIET_MS = 2_500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Names {
  exchange: string;
  delayedExchange: string;
  prefix: string;
}

/** Boots an app with the agent (bootApp closes what it built when the boot fails). */
function bootAgent(names: Names, url = BROKER_URL, logger = new CapturingLogger()): Promise<TestingModule> {
  return bootApp(
    { enabled: true, url, exchange: names.exchange, delayedExchange: names.delayedExchange, timeZone: 'UTC' },
    // holdMs 0: every delay of a second or more goes through the ladder, whose headers these cases attack.
    { imports: [MoDelayAgentModule.forRoot({ prefix: names.prefix, holdMs: 0 })], logger },
  );
}

describe('adversarial headers to the delay agent', () => {
  let broker: TestBroker;
  let names: Names;
  let delayed: Collector;
  let app: TestingModule | undefined;
  let logger: CapturingLogger;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    names = {
      exchange: uniqueName('adv-events'),
      delayedExchange: uniqueName('adv-delayed'),
      prefix: uniqueName('adv-agent'),
    };
    broker.track(names.exchange);
    broker.trackDelayAgent(names.prefix);
    await broker.channel.assertExchange(names.exchange, 'topic', { durable: true });
    delayed = await broker.collect(names.delayedExchange, '#');
    logger = new CapturingLogger();
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
  });

  const t = () => delayTopology(names.prefix);

  function eventBody(time = '2021-07-27T00:00:00+02:00'): Buffer {
    return Buffer.from(`{"uuid": "${randomUUID()}", "time": "${time}"}`);
  }

  function send(routingKey: string, body: Buffer, options: Options.Publish = {}): string {
    const messageId = options.messageId ?? randomUUID();
    broker.channel.publish(names.exchange, routingKey, body, { persistent: true, ...options, messageId });
    return messageId;
  }

  /** Waits for exactly `count` messages in the agent's dead-letter queue and takes them, by message_id. */
  async function deadLetters(count: number): Promise<Map<string, GetMessage>> {
    const dlq = t().deadLetter;
    await until(async () => (await broker.depth(dlq)) >= count, `${count} dead-lettered messages in ${dlq}`);
    await sleep(300); // a surplus copy would be on its way
    const messages = await broker.drain(dlq);
    expect(messages).toHaveLength(count);
    const byId = new Map(messages.map((m) => [String(m.properties.messageId), m]));
    expect(byId.size).toBe(count); // one copy each
    return byId;
  }

  /** Nothing comes round again: every queue of the agent stays empty and its counts stay where they are. */
  async function staysQuiet(agent: MoDelayAgent, forwardedCopies: number): Promise<void> {
    const before = agent.stats;
    await sleep(QUIET_MS);
    for (const queue of [t().incoming, t().due, t().deadLetter]) expect(await broker.depth(queue)).toBe(0);
    expect(agent.stats).toEqual({ ...before, holding: 0 });
    expect(delayed.messages).toHaveLength(forwardedCopies);
    expect(logger.text).not.toContain('goes back to its queue');
  }

  it(
    'dead-letters an event that carries x-mo-delay-* headers, once, and forwards nothing of it',
    async () => {
      app = await bootAgent(names, BROKER_URL, logger);
      const agent = app.get(MoDelayAgent);
      const steering: [string, unknown][] = [
        [ROUTING_KEY_HEADER, 'evil.routing.key'],
        [META_HEADER, '{'],
        [META_HEADER, 'null'],
        [DUE_HEADER, 0],
        [EXCHANGE_HEADER, 'amq.topic'],
      ];
      const sent = steering.map(([header, value]) => {
        const body = eventBody(); // due long ago: forwarded at once, were the header not there
        const id = send('employee.engagement.create', body, { headers: { [header]: value, 'x-trace': 'kept' } });
        return { id, header, value, body };
      });
      const good = send('employee.engagement.create', eventBody());

      const dead = await deadLetters(sent.length);
      for (const { id, header, value, body } of sent) {
        const m = dead.get(id) as GetMessage;
        expect(m).toBeDefined();
        const reason = String(m.properties.headers?.[MO_HEADER_REASON]);
        expect(reason).toContain(`header ${header}`);
        expect(reason).toContain(`received ${typeof value === 'string' ? JSON.stringify(value) : value}`);
        expect(m.content.equals(body)).toBe(true);
        expect(m.properties.headers?.[MO_HEADER_ROUTING_KEY]).toBe('employee.engagement.create');
        expect(m.properties.headers?.[MO_HEADER_EXCHANGE]).toBe(names.exchange);
        expect(m.properties.headers?.['x-trace']).toBe('kept');
      }
      await delayed.waitFor(1, 3_000);
      expect(delayed.messages.map((m) => m.properties.messageId)).toEqual([good]);
      expect(delayed.messages[0].fields.routingKey).toBe('employee.engagement.create');
      await until(() => agent.stats.forwarded === 1, 'the good forward to be counted');
      expect(agent.stats).toMatchObject({ deadLettered: sent.length, forwarded: 1, laddered: 0 });
      // Before the fix, each of these came back to the incoming queue about once a second, for ever.
      await staysQuiet(agent, 1);
    },
    CASE_MS,
  );

  it(
    'dead-letters a message put straight into its due queue with malformed ladder headers, and forwards a well-formed one',
    async () => {
      app = await bootAgent(names, BROKER_URL, logger);
      const agent = app.get(MoDelayAgent);
      const past = Date.now() - 60_000;
      const wellFormed: Record<string, unknown> = {
        [DUE_HEADER]: past,
        [ROUTING_KEY_HEADER]: 'employee.engagement.create',
        [EXCHANGE_HEADER]: names.exchange,
        [META_HEADER]: '{}',
      };
      const malformed: [string, string, Record<string, unknown>][] = [
        ['meta-brace', META_HEADER, { [META_HEADER]: '{' }],
        ['meta-null', META_HEADER, { [META_HEADER]: 'null' }],
        ['meta-expiration', META_HEADER, { [META_HEADER]: '{"expiration":"x"}' }],
        ['meta-extra-key', META_HEADER, { [META_HEADER]: '{"exchange":"amq.topic"}' }],
        ['meta-absent', META_HEADER, { [META_HEADER]: undefined }],
        ['key-evil', ROUTING_KEY_HEADER, { [ROUTING_KEY_HEADER]: 'evil.routing.key' }],
        ['key-absent', ROUTING_KEY_HEADER, { [ROUTING_KEY_HEADER]: undefined }],
        ['due-absent', DUE_HEADER, { [DUE_HEADER]: undefined }],
        ['due-string', DUE_HEADER, { [DUE_HEADER]: String(past) }],
        ['due-negative', DUE_HEADER, { [DUE_HEADER]: -1 }],
        ['due-fraction', DUE_HEADER, { [DUE_HEADER]: past + 0.5 }],
        ['exchange-number', EXCHANGE_HEADER, { [EXCHANGE_HEADER]: 5 }],
      ];
      const bodies = new Map<string, Buffer>();
      for (const [id, , change] of malformed) {
        const headers: Record<string, unknown> = { ...wellFormed, ...change, 'x-trace': 'kept' };
        for (const key of Object.keys(headers)) if (headers[key] === undefined) delete headers[key];
        const body = eventBody();
        bodies.set(id, body);
        broker.channel.sendToQueue(t().due, body, { messageId: id, persistent: true, headers });
      }
      const goodBody = eventBody();
      broker.channel.sendToQueue(t().due, goodBody, {
        messageId: 'well-formed',
        persistent: true,
        headers: {
          ...wellFormed,
          [META_HEADER]: '{"expiration":"600000","deliveryMode":1}',
          'x-trace': 'kept',
        },
      });

      const dead = await deadLetters(malformed.length);
      for (const [id, header, change] of malformed) {
        const m = dead.get(id) as GetMessage;
        expect(m).toBeDefined();
        const reason = String(m.properties.headers?.[MO_HEADER_REASON]);
        // Named by the routing key the ladder copy stands for, when its header has one; else by the queue's.
        const key = { ...wellFormed, ...change }[ROUTING_KEY_HEADER];
        const shown = typeof key === 'string' ? key : t().due;
        expect(`${id}: ${reason}`).toContain(`${id}: Malformed MO event on "${shown}": header ${header}: received`);
        expect(m.properties.headers?.[MO_HEADER_ROUTING_KEY]).toBe(shown);
        expect(reason).toContain('set by the delay agent when the message entered its ladder');
        expect(m.content.equals(bodies.get(id) as Buffer)).toBe(true);
      }
      const [forwarded] = await delayed.waitFor(1, 3_000);
      expect(forwarded.properties.messageId).toBe('well-formed');
      expect(forwarded.fields).toMatchObject({
        exchange: names.delayedExchange,
        routingKey: 'employee.engagement.create',
      });
      expect(forwarded.content.equals(goodBody)).toBe(true);
      // The ladder's headers are gone; the meta is applied.
      expect(forwarded.properties.headers).toEqual({ 'x-trace': 'kept' });
      expect(forwarded.properties.expiration).toBe('600000');
      expect(forwarded.properties.deliveryMode).toBe(1);
      await until(() => agent.stats.forwarded === 1, 'the forward to be counted');
      expect(agent.stats).toMatchObject({ deadLettered: malformed.length, forwarded: 1, laddered: 0 });
      await staysQuiet(agent, 1);
    },
    CASE_MS,
  );

  it(
    'trusts no header of a message put straight into a hold queue either; one due far off takes the ladder, not the memory',
    async () => {
      app = await bootAgent(names, BROKER_URL, logger);
      const agent = app.get(MoDelayAgent);
      // The hold queue the agent consumes now: the current second's.
      const hold = t().holdQueue(Math.floor(Date.now() / 1000) % HOLD_SLOTS);
      const headers = (due: unknown, key: unknown = 'employee.engagement.create') => ({
        [DUE_HEADER]: due,
        [ROUTING_KEY_HEADER]: key,
        [EXCHANGE_HEADER]: names.exchange,
        [META_HEADER]: '{}',
      });
      const put = (id: string, h: Record<string, unknown>) =>
        broker.channel.sendToQueue(hold, eventBody(), { messageId: id, persistent: true, headers: h });
      put('due-string', headers('soon'));
      put('key-evil', headers(Date.now(), 'evil.routing.key'));
      put('far-off', headers(Date.now() + 3_600_000));
      put('well-formed', headers(Date.now() - 1_000));

      const dead = await deadLetters(2);
      expect(String(dead.get('due-string')?.properties.headers?.[MO_HEADER_REASON])).toContain(
        `header ${DUE_HEADER}: received "soon"`,
      );
      expect(dead.get('key-evil')?.properties.headers?.[MO_HEADER_QUEUE]).toBe(hold);
      const [forwarded] = await delayed.waitFor(1, 3_000);
      expect(forwarded.properties.messageId).toBe('well-formed');
      await until(() => agent.stats.laddered === 1, 'the far-off one to enter the ladder');
      expect(agent.stats).toMatchObject({ deadLettered: 2, forwarded: 1, laddered: 1, holding: 0 });
    },
    CASE_MS,
  );

  it(
    'still delays a normal event and forwards it identically',
    async () => {
      app = await bootAgent(names, BROKER_URL, logger);
      const agent = app.get(MoDelayAgent);
      const due = Date.now() + 2_000;
      const body = eventBody(new Date(due).toISOString().replace('Z', '+00:00'));
      const messageId = send('org_unit.engagement.update', body, {
        headers: { 'x-trace': 'abc' },
        contentType: 'application/json',
        correlationId: 'corr-1',
        timestamp: 1_700_000_000,
      });
      const [message] = await delayed.waitFor(1, 6_000);
      const arrived = Date.now();
      expect(arrived).toBeGreaterThanOrEqual(due);
      expect(arrived - due).toBeLessThanOrEqual(1_000);
      expect(message.fields).toMatchObject({
        exchange: names.delayedExchange,
        routingKey: 'org_unit.engagement.update',
      });
      expect(message.content.equals(body)).toBe(true);
      expect(message.properties).toEqual(
        expect.objectContaining({
          messageId,
          contentType: 'application/json',
          correlationId: 'corr-1',
          timestamp: 1_700_000_000,
          deliveryMode: 2,
          headers: { 'x-trace': 'abc' },
        }),
      );
      await until(() => agent.stats.forwarded === 1, 'the forward to be counted');
      expect(agent.stats).toMatchObject({ forwarded: 1, laddered: 1, deadLettered: 0 });
      await staysQuiet(agent, 1);
    },
    CASE_MS,
  );

  it(
    'refuses at boot a delayed exchange that is the events exchange, before anything connects',
    async () => {
      const listener = await TcpProxy.start(null);
      try {
        const same = uniqueName('adv-same');
        const err = await bootAgent(
          { exchange: same, delayedExchange: same, prefix: names.prefix },
          listener.url,
          logger,
        ).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(MoAmqpConfigError);
        const message = (err as Error).message;
        expect(message).toContain(`delayedExchange: received "${same}"`);
        expect(message).toContain('the delay agent would republish every event into its own input');
        expect(listener.connections).toBe(0);
      } finally {
        await listener.close();
      }
    },
    CASE_MS,
  );

  it(
    "refuses at boot an events exchange named as one of the agent's own exchanges, naming AMQP__DELAY_PREFIX",
    async () => {
      for (const clash of [
        { exchange: `${names.prefix}.route.entry`, delayedExchange: names.delayedExchange },
        { exchange: names.exchange, delayedExchange: `${names.prefix}.route.03` },
      ]) {
        const err = await bootAgent({ ...clash, prefix: names.prefix }, BROKER_URL, logger).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(MoAmqpConfigError);
        const message = (err as Error).message;
        expect(message).toContain('AMQP__DELAY_PREFIX');
        expect(message).toContain(`received "${names.prefix}"`);
        const named = clash.exchange.startsWith(names.prefix) ? clash.exchange : clash.delayedExchange;
        expect(message).toContain(`"${named}" is AMQP__EXCHANGE or AMQP__DELAYED_EXCHANGE`);
      }
      // Nothing of the agent was declared.
      const probe = await broker.connection.createChannel();
      probe.on('error', () => undefined);
      await expect(probe.checkQueue(t().incoming)).rejects.toThrow(/NOT_FOUND/);
    },
    CASE_MS,
  );

  it(
    'leaves no connection open after refusing a clashing agent prefix',
    async () => {
      const proxy = await TcpProxy.start();
      let err: unknown;
      let open = -1;
      try {
        err = await bootAgent(
          { exchange: `${names.prefix}.route.entry`, delayedExchange: names.delayedExchange, prefix: names.prefix },
          proxy.url,
          logger,
        ).catch((e: unknown) => e);
        // The refusal comes from the agent's constructor, while the module is compiled, after
        // golevelup has started connecting: whatever connected by then must close.
        await sleep(1_000);
        const deadline = Date.now() + 2_000;
        while (proxy.openSockets > 0 && Date.now() < deadline) await sleep(50);
        open = proxy.openSockets;
      } finally {
        await proxy.close();
      }
      expect(err).toBeInstanceOf(MoAmqpConfigError);
      expect({ connectionsMade: proxy.connections, socketsStillOpen: open }).toEqual({
        connectionsMade: proxy.connections,
        socketsStillOpen: 0,
      });
    },
    CASE_MS,
  );
});
