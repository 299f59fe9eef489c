import { SpanKind, trace } from '@opentelemetry/api';
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import type { ConsumeMessage } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { MoDelayAgentModule, MoEventMessage, MoEventSubscribe, MoEventsService } from '../../lib';
import { bootApp, testSpoolDir } from '../support/app';
import { BROKER_URL, Collector, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { SpanView, startTracing, traceparentOf, viewOf } from '../support/otel';
import { until } from '../support/until';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

describe('trace context across the broker, with the Node tracing SDK', () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;
  let proxy: TcpProxy | undefined;
  let exchange: string;
  let tracing: ReturnType<typeof startTracing>;

  beforeEach(async () => {
    tracing = startTracing();
    broker = await TestBroker.connect();
    exchange = uniqueName('traced');
    broker.track(exchange);
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await proxy?.close();
    proxy = undefined;
    await broker.close();
    await tracing.stop();
  });

  const spans = (): SpanView[] => tracing.exporter.getFinishedSpans().map(viewOf);
  const spanNamed = (name: string) => spans().find((s) => s.name === name);

  function queueFor(name: string): string {
    const queue = uniqueName(name);
    broker.trackQueue(queue);
    broker.trackQueue(`${queue}.dlq`);
    return queue;
  }

  it('puts the producer span in traceparent and runs the @MoEventSubscribe handler in a consumer span under it', async () => {
    const queue = queueFor('traced');
    const collector = await broker.collect(exchange);
    const inHandler: { traceId?: string; spanId?: string }[] = [];
    @Injectable()
    class Payroll {
      @MoEventSubscribe({ queue })
      async onEvent() {
        inHandler.push({ ...trace.getActiveSpan()?.spanContext() });
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Payroll] });
    const events = app.get(MoEventsService);
    const result = await trace
      .getTracer('test')
      .startActiveSpan('GET /request', (span) =>
        events.publish('employee', 'engagement', 'create', UUID).finally(() => span.end()),
      );
    await until(() => inHandler.length === 1, 'the handler to run');
    const [message] = await collector.waitFor(1);

    const root = spanNamed('GET /request')!;
    const producer = spanNamed(`publish ${exchange}`)!;
    expect(producer).toMatchObject({
      kind: SpanKind.PRODUCER,
      traceId: root.traceId,
      parentSpanId: root.spanId,
      attributes: {
        'messaging.system': 'rabbitmq',
        'messaging.operation.name': 'publish',
        'messaging.operation.type': 'send',
        'messaging.destination.name': exchange,
        'messaging.rabbitmq.destination.routing_key': 'employee.engagement.create',
        'messaging.message.id': result.messageId,
        'mo_amqp.outcome': 'confirmed',
      },
    });
    // The message carries exactly the producer's context, and nothing else was added.
    expect(message.properties.headers).toEqual({ traceparent: traceparentOf(producer) });

    await until(() => spanNamed(`process ${queue}`) !== undefined, 'the consumer span to end');
    const consumer = spanNamed(`process ${queue}`)!;
    expect(consumer).toMatchObject({
      kind: SpanKind.CONSUMER,
      traceId: root.traceId,
      parentSpanId: producer.spanId,
      attributes: {
        'messaging.system': 'rabbitmq',
        'messaging.operation.type': 'process',
        'messaging.destination.name': exchange,
        'messaging.destination.subscription.name': queue,
        'messaging.rabbitmq.destination.routing_key': 'employee.engagement.create',
        'messaging.message.id': result.messageId,
      },
    });
    // The handler ran inside it: its own spans are children of the consumer span.
    expect(inHandler[0]).toMatchObject({ traceId: root.traceId, spanId: consumer.spanId });
  });

  it('marks a handler that throws on its consumer span, and each retry is a consumer span of the same producer', async () => {
    const queue = queueFor('failing');
    let calls = 0;
    @Injectable()
    class Failing {
      @MoEventSubscribe({ queue, retries: 1, retryDelayMs: 0 })
      async onEvent() {
        calls++;
        throw new TypeError('the payroll system is down');
      }
    }
    app = await bootApp(
      { enabled: true, url: BROKER_URL, exchange },
      { providers: [Failing], logger: new CapturingLogger() },
    );
    await app.get(MoEventsService).publish('employee', 'engagement', 'update', UUID);
    await until(() => spans().filter((s) => s.name === `process ${queue}`).length === 2, 'two tries');
    const producer = spanNamed(`publish ${exchange}`)!;
    const tries = spans().filter((s) => s.name === `process ${queue}`);
    expect(calls).toBe(2);
    for (const attempt of tries) {
      expect(attempt).toMatchObject({
        traceId: producer.traceId,
        parentSpanId: producer.spanId,
        status: 2, // ERROR
        attributes: { 'error.type': 'TypeError' },
      });
    }
  });

  it("keeps the delayed copy's headers identical: its consumer joins the producer's trace, the agent's span links to it", async () => {
    const delayedExchange = uniqueName('delayed');
    const prefix = uniqueName('agent');
    broker.track(delayedExchange);
    broker.trackDelayAgent(prefix);
    const queue = queueFor('due');
    const original = await broker.collect(exchange);
    const copies: ConsumeMessage[] = [];
    @Injectable()
    class WhenDue {
      @MoEventSubscribe({ queue, delayed: true })
      async onDue(_event: MoEventMessage, message: ConsumeMessage) {
        copies.push(message);
      }
    }
    app = await bootApp(
      { enabled: true, url: BROKER_URL, exchange, delayedExchange },
      { providers: [WhenDue], imports: [MoDelayAgentModule.forRoot({ prefix })], logger: new CapturingLogger() },
    );
    const due = new Date(Date.now() + 1_500).toISOString().replace('Z', '+00:00');
    await trace.getTracer('test').startActiveSpan('POST /engagements', (span) =>
      app!
        .get(MoEventsService)
        .publish('employee', 'engagement', 'create', UUID, { time: due })
        .finally(() => span.end()),
    );
    await until(() => copies.length === 1, 'the delayed copy to be consumed', 15_000);
    const [sent] = await original.waitFor(1);
    await until(() => spanNamed(`process ${queue}`) !== undefined, 'the consumer span to end');
    // The agent's span ends at its confirm, which may come after the copy was delivered.
    await until(() => spanNamed(`publish ${delayedExchange}`) !== undefined, "the agent's span to end");

    const root = spanNamed('POST /engagements')!;
    const producer = spanNamed(`publish ${exchange}`)!;
    expect(producer.parentSpanId).toBe(root.spanId);
    expect(copies[0].properties.headers).toEqual(sent.properties.headers);
    expect(copies[0].properties.headers).toEqual({ traceparent: traceparentOf(producer) });

    const agent = spanNamed(`publish ${delayedExchange}`)!;
    expect(agent).toMatchObject({ kind: SpanKind.PRODUCER, parentSpanId: undefined });
    expect(agent.traceId).not.toBe(root.traceId); // a trace of its own ...
    expect(agent.links).toEqual([{ traceId: root.traceId, spanId: producer.spanId }]); // ... linked to the producer
    expect(agent.attributes['mo_amqp.delay.lateness_ms']).toBeGreaterThanOrEqual(0);

    const delayedConsumer = spanNamed(`process ${queue}`)!;
    expect(delayedConsumer).toMatchObject({
      traceId: root.traceId,
      parentSpanId: producer.spanId,
      attributes: { 'messaging.destination.name': delayedExchange },
    });
  });

  it('keeps the trace context of an event that waited in the spool: the producing call is its parent', async () => {
    proxy = await TcpProxy.start();
    const collector = await broker.collect(exchange);
    app = await bootApp(
      { enabled: true, url: proxy.url, exchange, spoolDir: testSpoolDir() },
      { logger: new CapturingLogger() },
    );
    const events = app.get(MoEventsService);
    proxy.block();
    await until(() => !events.connected, 'the disconnect to be noticed');
    const result = await trace
      .getTracer('test')
      .startActiveSpan('PATCH /employees', (span) =>
        events.publish('employee', 'employee', 'update', UUID).finally(() => span.end()),
      );
    expect(result.status).toBe('spooled');
    proxy.unblock();
    const [message] = await collector.waitFor(1, 15_000);
    const producer = spanNamed(`publish ${exchange}`)!;
    expect(producer).toMatchObject({
      parentSpanId: spanNamed('PATCH /employees')!.spanId,
      attributes: { 'mo_amqp.outcome': 'spooled' },
    });
    expect(message.properties.headers).toEqual({ traceparent: traceparentOf(producer) });
  });

  it('never trusts trace headers from outside: a malformed or non-text traceparent starts a trace of its own', async () => {
    const queue = queueFor('hostile');
    const handled: string[] = [];
    @Injectable()
    class Payroll {
      @MoEventSubscribe({ queue })
      async onEvent(event: MoEventMessage) {
        handled.push(event.uuid);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Payroll] });
    const hostile: Record<string, unknown>[] = [
      { traceparent: 'garbage' },
      { traceparent: 42 },
      { traceparent: { nested: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } },
      { traceparent: '00-00000000000000000000000000000000-0000000000000000-01' },
      { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, tracestate: 'x'.repeat(60_000) },
    ];
    const uuids = hostile.map(() => randomUUID());
    hostile.forEach((headers, i) => {
      const body = JSON.stringify({ uuid: uuids[i], time: '2021-07-27T00:00:00+00:00' });
      broker.channel.publish(exchange, 'employee.employee.update', Buffer.from(body), {
        headers,
        messageId: `hostile-${i}`,
      });
    });
    await until(() => handled.length === hostile.length, 'every message to be handled');
    expect(handled.sort()).toEqual([...uuids].sort());
    await until(() => spans().filter((s) => s.name === `process ${queue}`).length === 5, 'five consumer spans');
    const consumers = spans().filter((s) => s.name === `process ${queue}`);
    const byId = new Map(consumers.map((s) => [s.attributes['messaging.message.id'], s]));
    for (let i = 0; i < 4; i++) expect(byId.get(`hostile-${i}`)!.parentSpanId).toBeUndefined();
    // A well-formed one is believed: that is what a traceparent is for.
    expect(byId.get('hostile-4')!).toMatchObject({ traceId: 'a'.repeat(32), parentSpanId: 'b'.repeat(16) });
  });
});

describe('trace context without an OpenTelemetry SDK', () => {
  it('adds no trace header: the message is what it was before tracing existed', async () => {
    const broker = await TestBroker.connect();
    const exchange = uniqueName('untraced');
    const collector: Collector = await broker.collect(exchange);
    const app = await bootApp({ enabled: true, url: BROKER_URL, exchange });
    try {
      await app.get(MoEventsService).publish('employee', 'engagement', 'create', UUID);
      const [message] = await collector.waitFor(1);
      expect(message.properties.headers ?? {}).toEqual({});
    } finally {
      await app.close();
      await broker.close();
    }
  });
});
