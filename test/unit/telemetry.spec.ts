import { ROOT_CONTEXT, SpanKind, context, metrics, propagation, trace } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { isTracingSuppressed } from '@opentelemetry/core';
import { HEADER_GETTER, withoutInstrumentation } from '../../lib/telemetry/otel';
import { outcomeValues } from '../../lib/telemetry/metrics';
import { processing, startSending } from '../../lib/telemetry/tracing';
import { observeRuntime } from '../../lib/telemetry/observed';
import { zeroCounters } from '../../lib/runtime/mo-amqp-stats';
import { startTracing, traceparentOf, viewOf } from '../support/otel';

describe('telemetry helpers', () => {
  let tracing: ReturnType<typeof startTracing>;
  beforeEach(() => (tracing = startTracing()));
  afterEach(() => tracing.stop());

  it("suppresses tracing the way @opentelemetry/core reads it, so amqplib's instrumentation stays out of our publish", () => {
    let suppressed: boolean | undefined;
    withoutInstrumentation(() => (suppressed = isTracingSuppressed(context.active())));
    expect(suppressed).toBe(true);
    expect(isTracingSuppressed(context.active())).toBe(false);
    // The propagator writes nothing there: an instrumentation cannot overwrite our traceparent.
    const carrier: Record<string, string> = {};
    const span = trace.getTracer('t').startSpan('s');
    withoutInstrumentation(() => propagation.inject(trace.setSpan(context.active(), span), carrier));
    expect(carrier).toEqual({});
    span.end();
  });

  it('reads only text trace headers', () => {
    expect(HEADER_GETTER.get({ traceparent: 'x' }, 'traceparent')).toBe('x');
    for (const value of [42, Buffer.from('00-aa'), { a: 1 }, ['x'], null, undefined]) {
      expect(HEADER_GETTER.get({ traceparent: value }, 'traceparent')).toBeUndefined();
    }
    expect(HEADER_GETTER.get(undefined, 'traceparent')).toBeUndefined();
    expect(HEADER_GETTER.keys({ a: 1, b: 2 })).toEqual(['a', 'b']);
  });

  it('names each counter as a snake_case outcome', () => {
    expect(outcomeValues({ published: 3, deadLettered: 1, decoratorFailures: 0 })).toEqual([
      [3, { 'mo_amqp.outcome': 'published' }],
      [1, { 'mo_amqp.outcome': 'dead_lettered' }],
      [0, { 'mo_amqp.outcome': 'decorator_failures' }],
    ]);
  });

  it('ends the producer span with the outcome, or as an error with the failure', () => {
    const ok = startSending('os2mo', 'employee.employee.create', 'id-1', 80);
    const bad = startSending('os2mo', 'employee.employee.update', 'id-2', 80);
    ok.end('spooled');
    bad.end('failed', 'timeout');
    const [first, second] = tracing.exporter.getFinishedSpans().map(viewOf);
    expect(ok.headers).toEqual({ traceparent: traceparentOf(first) });
    expect(first).toMatchObject({ kind: SpanKind.PRODUCER, status: 0, attributes: { 'mo_amqp.outcome': 'spooled' } });
    expect(second).toMatchObject({ status: 2, attributes: { 'error.type': 'timeout' } });
  });

  const received = (headers: Record<string, unknown> | undefined) => ({
    exchange: 'os2mo',
    routingKey: 'employee.employee.create',
    messageId: 'id-1',
    deliveryTag: 1,
    headers,
    bytes: 80,
  });

  it("puts the consumer span under an active span of the producer's trace (an instrumentation's), else under the producer", async () => {
    const producer = trace.getTracer('t').startSpan('producer');
    const headers = { traceparent: traceparentOf(producer.spanContext()) };
    // An instrumentation's consumer span, made from the same headers, is active.
    const parentContext = propagation.extract(ROOT_CONTEXT, headers);
    const instrumentation = trace.getTracer('amqplib').startSpan('q process', {}, parentContext);
    await context.with(trace.setSpan(parentContext, instrumentation), () =>
      processing('q', received(headers), async () => undefined),
    );
    // An unrelated active span (another trace) is not the parent: the producer is.
    const unrelated = trace.getTracer('t').startSpan('unrelated', { root: true });
    await context.with(trace.setSpan(ROOT_CONTEXT, unrelated), () =>
      processing('q', received(headers), async () => undefined),
    );
    const [under, beside] = tracing.exporter
      .getFinishedSpans()
      .map(viewOf)
      .filter((s) => s.name === 'process q');
    expect(under.parentSpanId).toBe(instrumentation.spanContext().spanId);
    expect(beside).toMatchObject({
      traceId: producer.spanContext().traceId,
      parentSpanId: producer.spanContext().spanId,
    });
  });

  it("passes the handler's error on after marking the span", async () => {
    await expect(
      processing('q', received(undefined), async () => {
        throw new RangeError('no');
      }),
    ).rejects.toThrow('no');
    const [span] = tracing.exporter.getFinishedSpans().map(viewOf);
    expect(span).toMatchObject({ status: 2, parentSpanId: undefined, attributes: { 'error.type': 'RangeError' } });
  });

  it('takes no baggage from a message into the handler, and survives a propagator that throws', async () => {
    const producer = trace.getTracer('t').startSpan('producer');
    const headers = { traceparent: traceparentOf(producer.spanContext()), baggage: 'user=mallory' };
    let baggage: unknown = 'not run';
    await processing('q', received(headers), async () => {
      baggage = propagation.getActiveBaggage();
    });
    expect(baggage).toBeUndefined();

    propagation.disable();
    propagation.setGlobalPropagator({
      inject: () => {
        throw new Error('inject');
      },
      extract: () => {
        throw new Error('extract');
      },
      fields: () => ['traceparent'],
    });
    expect(startSending('os2mo', 'employee.employee.create', 'id-3', 80).headers).toBeUndefined();
    let ran = false;
    await processing('q', received(headers), async () => {
      ran = true;
    });
    expect(ran).toBe(true);
  });
});

describe('metrics of several apps in one process', () => {
  it('adds their counters and spools up, and drops each one that stops', async () => {
    const reader = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [reader] });
    metrics.setGlobalMeterProvider(provider);
    const published = async () => {
      const { resourceMetrics } = await reader.collect();
      const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
      const events = all.find((m) => m.descriptor.name === 'mo_amqp.events');
      const point = events?.dataPoints.find((p) => p.attributes['mo_amqp.outcome'] === 'published');
      const spool = all.find((m) => m.descriptor.name === 'mo_amqp.spool.events')?.dataPoints[0]?.value;
      return [point?.value, spool];
    };
    try {
      const view = (n: number, records?: number) => ({
        counters: { ...zeroCounters(), resent: 0, published: n },
        spoolStats: records === undefined ? undefined : { bytes: records * 100, records, oldestSpooledAt: Date.now() },
      });
      const stopFirst = observeRuntime(view(2, 1));
      const stopSecond = observeRuntime(view(3));
      expect(await published()).toEqual([5, 1]);
      stopFirst();
      expect(await published()).toEqual([3, 0]);
      stopSecond();
      // The last one out removed the callbacks; an app started later is read again, on its own.
      const stopThird = observeRuntime(view(7));
      expect(await published()).toEqual([7, 0]);
      stopThird();
    } finally {
      await provider.shutdown();
      metrics.disable();
    }
  });
});
