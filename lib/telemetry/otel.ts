import type * as OtelApi from '@opentelemetry/api';
import { createRequire } from 'node:module';

/**
 * `@opentelemetry/api` when the application has it installed (an optional
 * peer), else undefined: then nothing here traces or measures. With the API
 * but no SDK registered, its calls are the API's own no-ops.
 */
export const otel: typeof OtelApi | undefined = loadApi();

function loadApi(): typeof OtelApi | undefined {
  try {
    return createRequire(__filename)('@opentelemetry/api') as typeof OtelApi;
  } catch {
    return undefined;
  }
}

/** This package's name and version, as the tracer's and meter's scope. */
export const SCOPE = 'nestjs-mo-amqp';
export const SCOPE_VERSION: string | undefined = readVersion();

function readVersion(): string | undefined {
  try {
    return (createRequire(__filename)('../../package.json') as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** The OpenTelemetry messaging conventions' attribute names this package sets. */
export const ATTR = {
  system: 'messaging.system',
  operationName: 'messaging.operation.name',
  operationType: 'messaging.operation.type',
  destination: 'messaging.destination.name',
  subscription: 'messaging.destination.subscription.name',
  routingKey: 'messaging.rabbitmq.destination.routing_key',
  messageId: 'messaging.message.id',
  bodySize: 'messaging.message.body.size',
  deliveryTag: 'messaging.rabbitmq.message.delivery_tag',
  errorType: 'error.type',
} as const;

export const RABBITMQ = 'rabbitmq';

/**
 * Message headers as a carrier for the application's propagator. Headers come
 * from outside: only string values are read (amqplib decodes AMQP long strings
 * to strings); a number, table or byte array under `traceparent` reads as absent.
 */
export const HEADER_GETTER: OtelApi.TextMapGetter<Record<string, unknown> | undefined> = {
  keys: (carrier) => (carrier ? Object.keys(carrier) : []),
  get: (carrier, key) => {
    const value = carrier?.[key];
    return typeof value === 'string' ? value : undefined;
  },
};

/**
 * The root context with tracing suppressed, as `@opentelemetry/core` marks it:
 * its `suppressTracing` where installed, else the key it sets (context keys are
 * `Symbol.for` their description). Instrumentations started in it make no span,
 * and the SDK's propagators inject nothing.
 */
const SUPPRESSED = otel && suppressedRoot(otel);

function suppressedRoot(api: typeof OtelApi): OtelApi.Context {
  try {
    // `@opentelemetry/core` comes with every SDK: its own function, where it is installed.
    const core = createRequire(__filename)('@opentelemetry/core') as {
      suppressTracing?: (context: OtelApi.Context) => OtelApi.Context;
    };
    if (typeof core.suppressTracing === 'function') return core.suppressTracing(api.ROOT_CONTEXT);
  } catch {
    // Not installed: the key it sets.
  }
  return api.ROOT_CONTEXT.setValue(Symbol.for('OpenTelemetry SDK Context Key SUPPRESS_TRACING'), true);
}

/**
 * Runs `fn` (an amqplib publish) where `@opentelemetry/instrumentation-amqplib`,
 * if the application enabled it, neither makes a second producer span nor
 * overwrites the `traceparent` this package wrote: the message leaves with the
 * headers it was given, and a delayed copy stays identical.
 */
export function withoutInstrumentation(fn: () => void): void {
  // The root context: nothing amqplib does while it writes needs the caller's.
  if (otel && SUPPRESSED && tracingRegistered(otel)) otel.context.with(SUPPRESSED, fn);
  else fn();
}

/** What the API's proxy delegates to while no SDK is registered (the API's own no-op provider). */
const NO_SDK = otel && new otel.ProxyTracerProvider().getDelegate();

/** True once an SDK's tracer provider is registered (before that, every span is the API's no-op). */
export function tracingRegistered(
  api: typeof OtelApi,
  current: OtelApi.TracerProvider = api.trace.getTracerProvider(),
): boolean {
  return (current instanceof api.ProxyTracerProvider ? current.getDelegate() : current) !== NO_SDK;
}
