import { SpanKind } from '@opentelemetry/api';
import { ChildProcess, execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { PG_URL, sql, uniqueTable } from '../support/postgres';
import { traceparentOf } from '../support/otel';
import { until } from '../support/until';

const ROOT = join(__dirname, '..', '..');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'traced-sample-app.js');

interface Span {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  links: { traceId: string; spanId: string }[];
  attributes: Record<string, unknown>;
  scope: string;
}
interface Handled {
  queue: 'engaged' | 'due';
  uuid: string;
  headers: Record<string, unknown>;
  span: { traceId: string; spanId: string };
}

// The sample app and the library it imports, compiled once for the child processes.
let built: string;
beforeAll(() => {
  built = mkdtempSync(join(tmpdir(), 'mo-amqp-traced-sample-'));
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'sample-app/tsconfig.app.json', '--outDir', built],
    {
      cwd: ROOT,
    },
  );
}, 60_000);
afterAll(() => rmSync(built, { recursive: true, force: true }));

describe.each(['off', 'on'])(
  'one HTTP request of the sample app as one trace (amqplib instrumentation %s)',
  (amqplib) => {
    let broker: TestBroker;
    let child: ChildProcess | undefined;
    const exchange = uniqueName('sample.traced');
    const delayedExchange = uniqueName('sample.traced.delayed');
    const prefix = uniqueName('sample.traced.agent');
    const engagedQueue = uniqueName('sample.engaged');
    const dueQueue = uniqueName('sample.due');
    const schema = uniqueTable('traced');

    beforeAll(async () => {
      broker = await TestBroker.connect();
      broker.track(exchange);
      broker.track(delayedExchange);
      broker.trackDelayAgent(prefix);
      for (const queue of [engagedQueue, dueQueue]) {
        broker.trackQueue(queue);
        broker.trackQueue(`${queue}.dlq`);
      }
      await sql(`CREATE SCHEMA "${schema}"`);
    });

    afterAll(async () => {
      if (child && child.exitCode === null) {
        child.send('exit');
        await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 10_000).unref())]);
        child.kill('SIGKILL');
      }
      await broker.close();
      await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    });

    async function report(): Promise<{ spans: Span[]; handled: Handled[] }> {
      child!.send('report');
      const [answer] = (await once(child!, 'message')) as [{ spans: Span[]; handled: Handled[] }];
      return answer;
    }

    it('reaches the consumer, the delay agent and the delayed copy’s consumer, each span under its parent', async () => {
      child = fork(FIXTURE, [], {
        env: {
          ...process.env,
          NODE_PATH: join(ROOT, 'node_modules'),
          BUILT_DIR: built,
          OTEL_AMQPLIB: amqplib,
          ENABLE_AMQP: 'true',
          AMQP__URL: BROKER_URL,
          AMQP__EXCHANGE: exchange,
          AMQP__DELAYED_EXCHANGE: delayedExchange,
          DATABASE_URL: PG_URL,
          DATABASE_SCHEMA: schema,
          AMQP__OUTBOX: 'postgres',
          AMQP__OUTBOX_URL: PG_URL,
          AMQP__OUTBOX_TABLE: `${schema}.mo_amqp_outbox`,
          AMQP__SPOOL_DIR: join(built, `spool-${amqplib}`),
          AGENT_PREFIX: prefix,
          ENGAGED_QUEUE: engagedQueue,
          DUE_QUEUE: dueQueue,
        },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const exited = once(child, 'exit').then(([code]) => {
        throw new Error(`the traced sample app exited with code ${code}`);
      });
      const [ready] = (await Promise.race([once(child, 'message'), exited])) as [{ ready: number }];
      exited.catch(() => undefined); // from now on, a crash shows as a failed report
      const base = `http://127.0.0.1:${ready.ready}`;
      const post = (url: string, body: object) =>
        fetch(base + url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });

      const created = async (url: string, body: object) => (await (await post(url, body)).json()) as { uuid: string };
      const unit = await created('/org-units', { name: 'Borgerservice', validFrom: '2021-01-01' });
      const anne = await created('/employees', { name: 'Anne Jensen' });
      // Effective in 2 s: its two events are handled now, and their copies again when due.
      const validFrom = new Date(Date.now() + 2_000).toISOString().replace('Z', '+00:00');
      const response = await post('/engagements', {
        employeeUuid: anne.uuid,
        orgUnitUuid: unit.uuid,
        jobTitle: 'Caseworker',
        validFrom,
      });
      expect(response.status).toBe(201);
      const [, traceId, serverSpanId] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(
        response.headers.get('traceresponse') ?? '',
      )!;

      await until(
        async () => {
          const { handled, spans } = await report();
          // The agent's spans end at their confirms, which may come after the copies were delivered.
          const forwarded = spans.filter(
            (s) => s.name === `publish ${delayedExchange}` && s.links[0]?.traceId === traceId,
          );
          return handled.filter((h) => h.queue === 'due').length === 2 && forwarded.length === 2;
        },
        'both delayed copies to be handled',
        20_000,
      );
      // Spans are exported as they end: a consumer span after its handler, the amqplib instrumentation's at
      // its ack. Wait until every handler's span and every parent named in the trace has ended (or 10 s).
      let last = await report();
      const ended = ({ spans, handled }: typeof last) => {
        const ids = new Set(spans.filter((s) => s.traceId === traceId).map((s) => s.spanId));
        const parents = spans.filter((s) => s.traceId === traceId && s.parentSpanId).map((s) => s.parentSpanId!);
        return handled.every((h) => ids.has(h.span.spanId)) && parents.every((id) => ids.has(id));
      };
      await until(async () => ended((last = await report())), 'the spans of the trace to end').catch(() => undefined);
      const { spans, handled } = last;
      const inTrace = spans.filter((s) => s.traceId === traceId);
      const byId = new Map(inTrace.map((s) => [s.spanId, s]));

      // The request's server span is the root; every span of the trace hangs under an exported parent.
      const server = byId.get(serverSpanId)!;
      expect(server.kind).toBe(SpanKind.SERVER);
      expect(server.parentSpanId).toBeUndefined();
      for (const span of inTrace) {
        if (span !== server) expect(byId.has(span.parentSpanId!)).toBe(true);
      }
      const ancestors = (span: Span): string[] =>
        span.parentSpanId ? [span.parentSpanId, ...ancestors(byId.get(span.parentSpanId)!)] : [];

      // Two events, each one producer span under the request (written to the outbox in its transaction).
      const producers = inTrace.filter((s) => s.name === `publish ${exchange}`);
      expect(producers.map((p) => p.attributes['messaging.rabbitmq.destination.routing_key']).sort()).toEqual([
        'employee.engagement.create',
        'org_unit.engagement.create',
      ]);
      for (const producer of producers) {
        expect(producer).toMatchObject({
          kind: SpanKind.PRODUCER,
          scope: 'nestjs-mo-amqp',
          attributes: { 'mo_amqp.outcome': 'outboxed' },
        });
        expect(ancestors(producer)).toContain(serverSpanId);
      }
      // The instrumentation, when on, made consumer spans of its own in the trace (all under exported parents, above) ...
      const instrumented = inTrace.filter((s) => s.scope === '@opentelemetry/instrumentation-amqplib');
      if (amqplib === 'on') expect(instrumented.filter((s) => s.kind === SpanKind.CONSUMER).length).toBeGreaterThan(0);
      else expect(instrumented).toEqual([]);
      // ... but no second producer span, and no header of its own on the messages.
      expect(spans.filter((s) => s.kind === SpanKind.PRODUCER && s.scope !== 'nestjs-mo-amqp')).toEqual([]);

      for (const queue of ['engaged', 'due'] as const) {
        const mine = handled.filter((h) => h.queue === queue);
        expect(mine).toHaveLength(2);
        for (const h of mine) {
          // The message carries its producer's context, unchanged (a delayed copy included) ...
          const producer = producers.find((p) => h.headers.traceparent === traceparentOf(p));
          expect(producer).toBeDefined();
          expect(Object.keys(h.headers).filter((k) => /^(traceparent|tracestate|baggage)$/.test(k))).toEqual([
            'traceparent',
          ]);
          // ... and the handler ran in this package's consumer span, under that producer, in the request's trace.
          const consumer = byId.get(h.span.spanId)!;
          expect(consumer).toMatchObject({ kind: SpanKind.CONSUMER, scope: 'nestjs-mo-amqp', traceId });
          expect(consumer.name).toBe(`process ${queue === 'engaged' ? engagedQueue : dueQueue}`);
          expect(ancestors(consumer)).toContain(producer!.spanId);
        }
      }

      // The delay agent forwarded each copy in a span of its own trace, linked to the producer's span.
      const agentSpans = spans.filter(
        (s) => s.name === `publish ${delayedExchange}` && s.links.some((l) => l.traceId === traceId),
      );
      expect(agentSpans).toHaveLength(2);
      for (const agent of agentSpans) {
        expect(agent.traceId).not.toBe(traceId);
        expect(agent.links).toHaveLength(1);
        expect(agent.links[0].traceId).toBe(traceId);
        expect(producers.map((p) => p.spanId)).toContain(agent.links[0].spanId);
      }
    }, 60_000);
  },
);
