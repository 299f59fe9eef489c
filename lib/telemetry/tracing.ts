import type { Attributes, Context, Span, Tracer, TracerProvider } from '@opentelemetry/api';
import { ATTR, HEADER_GETTER, RABBITMQ, SCOPE, SCOPE_VERSION, otel, tracingRegistered } from './otel';
import { instruments, recordSendDuration } from './metrics';

let provider: TracerProvider | undefined;
let cachedTracer: Tracer | undefined;

/**
 * This package's tracer, or undefined while no SDK is registered: then no span
 * is made at all (the API's no-op spans and contexts still cost per event).
 */
function tracer(api: NonNullable<typeof otel>): Tracer | undefined {
  const current = api.trace.getTracerProvider();
  if (!tracingRegistered(api, current)) return undefined;
  if (current !== provider || !cachedTracer) {
    provider = current;
    cachedTracer = current.getTracer(SCOPE, SCOPE_VERSION);
  }
  return cachedTracer;
}

/** A publish in progress: the trace headers it carries, and its end. */
export interface Sending {
  /** `traceparent`, `tracestate` (whatever the application's propagator writes); undefined when none. */
  readonly headers: Record<string, string> | undefined;
  /** `outcome` once it is settled; a failure's reason (timeout, rejected, …) as `failure`. */
  end(outcome: 'confirmed' | 'spooled' | 'outboxed' | 'failed', failure?: string): void;
}

const UNTRACED: Sending = { headers: undefined, end: () => undefined };

/**
 * Starts the producer span of an MO event sent now, a child of the caller's
 * context (the HTTP request's, say), and the headers that carry it to the
 * consumers: through the spool and the outbox too, since they keep the headers.
 */
export function startSending(exchange: string, routingKey: string, messageId: string, bytes: number): Sending {
  if (!otel) return UNTRACED;
  const api = otel;
  const spans = tracer(api);
  if (!spans) return instruments() ? timedOnly(exchange) : UNTRACED;
  const started = performance.now();
  const span = spans.startSpan(`publish ${exchange}`, {
    kind: api.SpanKind.PRODUCER,
    attributes: { ...publishAttributes(exchange, routingKey, messageId), [ATTR.bodySize]: bytes },
  });
  const carrier: Record<string, string> = {};
  try {
    api.propagation.inject(api.trace.setSpan(api.context.active(), span), carrier);
  } catch {
    // An application's propagator that throws costs the trace headers, never the event.
  }
  // None without an SDK (the API's propagator writes nothing): the event is sent as before.
  const headers = hasKeys(carrier) ? carrier : undefined;
  return {
    headers,
    end(outcome, failure) {
      if (failure !== undefined) {
        span.setAttribute(ATTR.errorType, failure);
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: `publish failed: ${failure}` });
      } else {
        span.setAttribute('mo_amqp.outcome', outcome);
      }
      span.end();
      // Publish to confirm: a spooled or outboxed event has not reached the broker yet.
      if (outcome === 'confirmed' || failure !== undefined) recordSendDuration(exchange, started, failure);
    },
  };
}

/** A producer span's attributes (the messaging conventions'); a message id only when it is text. */
function publishAttributes(exchange: string, routingKey: string, messageId: unknown): Attributes {
  return {
    [ATTR.system]: RABBITMQ,
    [ATTR.operationName]: 'publish',
    [ATTR.operationType]: 'send',
    [ATTR.destination]: exchange,
    [ATTR.routingKey]: routingKey,
    ...(typeof messageId === 'string' && { [ATTR.messageId]: messageId }),
  };
}

/** Metrics without tracing: publish to confirm only. */
function timedOnly(exchange: string): Sending {
  const started = performance.now();
  return {
    headers: undefined,
    end(outcome, failure) {
      if (outcome === 'confirmed' || failure !== undefined) recordSendDuration(exchange, started, failure);
    },
  };
}

function hasKeys(object: object): boolean {
  for (const _key in object) return true;
  return false;
}

/** What a consumer span needs to know of its delivery. */
export interface Received {
  readonly exchange: string;
  readonly routingKey: string;
  readonly messageId: unknown;
  readonly deliveryTag: number;
  readonly headers: Record<string, unknown> | undefined;
  readonly bytes: number;
}

/**
 * Runs an `@MoEventSubscribe` handler inside its consumer span, whose parent
 * is the producer's (from the message's headers). When an amqplib
 * instrumentation already made a span for this delivery from the same headers,
 * that span is the parent instead, so neither is left beside the other.
 * Records `messaging.process.duration`; the handler's error is passed on.
 */
export async function processing<T>(queue: string, received: Received, handle: () => Promise<T>): Promise<T> {
  if (!otel) return handle();
  const api = otel;
  const spans = tracer(api);
  if (!spans && !instruments()) return handle();
  const started = performance.now();
  const attributes: Attributes = {
    [ATTR.system]: RABBITMQ,
    [ATTR.operationName]: 'process',
    [ATTR.operationType]: 'process',
    [ATTR.destination]: received.exchange,
    [ATTR.subscription]: queue,
  };
  let failure: string | undefined;
  let span: Span | undefined;
  try {
    if (!spans) return await handle();
    const parent = parentOf(api, api.context.active(), received.headers);
    span = spans.startSpan(
      `process ${queue}`,
      {
        kind: api.SpanKind.CONSUMER,
        attributes: {
          ...attributes,
          [ATTR.routingKey]: received.routingKey,
          [ATTR.deliveryTag]: received.deliveryTag,
          [ATTR.bodySize]: received.bytes,
          ...(typeof received.messageId === 'string' && { [ATTR.messageId]: received.messageId }),
        },
      },
      parent,
    );
    return await api.context.with(api.trace.setSpan(parent, span), handle);
  } catch (err) {
    failure = err instanceof Error ? err.name : 'Error';
    // The error's name only: a handler's message is the application's and may hold anything.
    span?.setAttribute(ATTR.errorType, failure);
    span?.setStatus({ code: api.SpanStatusCode.ERROR, message: `the handler threw ${failure}` });
    throw err;
  } finally {
    span?.end();
    instruments()?.processDuration.record(
      (performance.now() - started) / 1000,
      failure === undefined ? attributes : { ...attributes, [ATTR.errorType]: failure },
    );
  }
}

/**
 * The producer's context from the headers, unless the active span is already
 * of its trace (an instrumentation's). Baggage from a message is not taken on:
 * it would ride along into everything the handler calls and publishes.
 */
function parentOf(
  api: NonNullable<typeof otel>,
  active: Context,
  headers: Record<string, unknown> | undefined,
): Context {
  const extracted = extractFrom(api, active, headers);
  const remote = api.trace.getSpanContext(extracted);
  const current = api.trace.getSpanContext(active);
  const parent = !remote || remote === current || current?.traceId === remote.traceId ? active : extracted;
  return api.propagation.deleteBaggage(parent);
}

/** The application's propagator on headers from outside: one that throws reads as no trace. */
function extractFrom(api: NonNullable<typeof otel>, context: Context, headers: Record<string, unknown> | undefined) {
  try {
    return api.propagation.extract(context, headers, HEADER_GETTER);
  } catch {
    return context;
  }
}

/**
 * Forwards a delay agent's due copy (`send`) inside the agent's span: a trace
 * of its own (a copy may leave a month after the request that made it) with a
 * link to the producer's span. The copy itself carries the original headers,
 * so its consumers join the producer's trace. Records `mo_amqp.delay.lateness`.
 */
export async function forwarding(
  exchange: string,
  routingKey: string,
  properties: { readonly messageId?: unknown; readonly headers?: Record<string, unknown> },
  due: number,
  send: () => Promise<void>,
): Promise<void> {
  if (!otel) return send();
  const api = otel;
  const lateSeconds = Math.max(0, Date.now() - due) / 1000;
  instruments()?.lateness.record(lateSeconds, { [ATTR.system]: RABBITMQ, [ATTR.destination]: exchange });
  const spans = tracer(api);
  if (!spans) return send();
  const producer = api.trace.getSpanContext(extractFrom(api, api.ROOT_CONTEXT, properties.headers));
  const span = spans.startSpan(
    `publish ${exchange}`,
    {
      kind: api.SpanKind.PRODUCER,
      root: true,
      links: producer && api.trace.isSpanContextValid(producer) ? [{ context: producer }] : undefined,
      attributes: {
        ...publishAttributes(exchange, routingKey, properties.messageId),
        'mo_amqp.delay.due': new Date(due).toISOString(),
        'mo_amqp.delay.lateness_ms': Math.round(lateSeconds * 1000),
      },
    },
    api.ROOT_CONTEXT,
  );
  try {
    await send();
  } catch (err) {
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'forwarding failed' });
    span.setAttribute(ATTR.errorType, err instanceof Error ? err.name : 'Error');
    throw err;
  } finally {
    span.end();
  }
}
