import type { Attributes, Histogram, Meter, MeterProvider, ObservableResult } from '@opentelemetry/api';
import { ATTR, RABBITMQ, SCOPE, SCOPE_VERSION, otel } from './otel';

/** Seconds: the messaging conventions' advised boundaries (5 ms to 10 s). */
const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
/** A delayed copy's lateness: from a millisecond to a minute. */
const LATENESS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Instruments {
  readonly meter: Meter;
  /** `messaging.client.operation.duration`: a publish until its confirm. */
  readonly sendDuration: Histogram;
  /** `messaging.process.duration`: an `@MoEventSubscribe` handler's time. */
  readonly processDuration: Histogram;
  /** `mo_amqp.delay.lateness`: a delayed copy forwarded after its time. */
  readonly lateness: Histogram;
}

let provider: MeterProvider | undefined;
let cached: Instruments | undefined;

/**
 * The instruments of the meter provider registered now (none without the
 * API). Looked up per use, so an SDK started after this package loaded, or
 * replaced (tests), is the one measured into.
 */
export function instruments(): Instruments | undefined {
  if (!otel) return undefined;
  const current = otel.metrics.getMeterProvider();
  if (current !== provider) {
    provider = current;
    const meter = current.getMeter(SCOPE, SCOPE_VERSION);
    // No SDK: the API's no-op meter. Nothing is timed then (a clock read per event is a cost).
    cached = meter === otel.createNoopMeter() ? undefined : instrumentsOf(meter);
  }
  return cached;
}

function instrumentsOf(meter: Meter): Instruments {
  return {
    meter,
    sendDuration: meter.createHistogram('messaging.client.operation.duration', {
      description: 'How long publishing an MO event took, from the call until the broker confirmed it',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    }),
    processDuration: meter.createHistogram('messaging.process.duration', {
      description: 'How long an @MoEventSubscribe handler took with one message',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    }),
    lateness: meter.createHistogram('mo_amqp.delay.lateness', {
      description: "How long after its time the delay agent forwarded a message's copy",
      unit: 's',
      advice: { explicitBucketBoundaries: LATENESS_BUCKETS },
    }),
  };
}

/** Now (performance.now()) when a meter measures, else 0: no clock read without an SDK. */
export function sendClock(): number {
  return instruments() ? performance.now() : 0;
}

/** Attributes of a publish to `exchange`, made once per exchange (they go with every measurement). */
const sendAttributes = new Map<string, Attributes>();
export function sendAttributesOf(exchange: string): Attributes {
  let attributes = sendAttributes.get(exchange);
  if (!attributes) {
    attributes = {
      [ATTR.system]: RABBITMQ,
      [ATTR.operationName]: 'publish',
      [ATTR.operationType]: 'send',
      [ATTR.destination]: exchange,
    };
    if (sendAttributes.size < 1_000) sendAttributes.set(exchange, attributes);
  }
  return attributes;
}

/** Records `messaging.client.operation.duration`: a publish to `exchange` from `started` (performance.now()) until now. */
export function recordSendDuration(exchange: string, started: number, failure?: string): void {
  const histogram = instruments()?.sendDuration;
  // Started before a meter was registered (sendClock() gave 0): no duration to tell.
  if (!histogram || started === 0) return;
  const attributes = sendAttributesOf(exchange);
  histogram.record(
    (performance.now() - started) / 1000,
    failure === undefined ? attributes : { ...attributes, [ATTR.errorType]: failure },
  );
}

/** What an observer reads at each collection: a name, its unit and description, and the values. */
export interface Observed {
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  readonly kind: 'counter' | 'gauge' | 'updowncounter';
  /** The values now, each with its attributes; called at collection only. */
  read(): readonly (readonly [number, Attributes])[];
}

/**
 * Registers observable instruments on the meter provider registered now; they
 * cost nothing between collections. Returns what removes them again (at shutdown).
 */
function observe(observed: readonly Observed[]): () => void {
  const meter = instruments()?.meter;
  if (!meter) return () => undefined;
  const pairs = observed.map((o) => {
    const options = { unit: o.unit, description: o.description };
    const instrument =
      o.kind === 'counter'
        ? meter.createObservableCounter(o.name, options)
        : o.kind === 'gauge'
          ? meter.createObservableGauge(o.name, options)
          : meter.createObservableUpDownCounter(o.name, options);
    const callback = (result: ObservableResult) => {
      for (const [value, attributes] of o.read()) result.observe(value, attributes);
    };
    instrument.addCallback(callback);
    return () => instrument.removeCallback(callback);
  });
  return () => pairs.forEach((remove) => remove());
}

/** The views one set of observable instruments reads (every app of the process), on one meter provider. */
export interface Shared<V> {
  readonly views: Set<V>;
  provider?: MeterProvider;
  remove?: () => void;
}

/**
 * Adds `view` to what `shared`'s instruments read, registering them once per
 * meter provider (two apps in one process add up, not overwrite each other).
 * Returns what takes the view out again; the last one out removes the instruments.
 */
export function observeEach<V>(
  shared: Shared<V>,
  view: V,
  observed: (views: ReadonlySet<V>) => Observed[],
): () => void {
  if (!instruments()) return () => undefined;
  shared.views.add(view);
  if (shared.provider !== provider) {
    shared.remove?.();
    shared.remove = observe(observed(shared.views));
    shared.provider = provider;
  }
  return () => {
    if (!shared.views.delete(view) || shared.views.size > 0) return;
    shared.remove?.();
    shared.remove = undefined;
    shared.provider = undefined;
  };
}

/** `mo_amqp.outcome` for each key of a counters object: `deadLettered` reads `dead_lettered`. */
export function outcomeValues(counters: object, attribute = 'mo_amqp.outcome'): [number, Attributes][] {
  return Object.entries(counters).map(([key, value]) => [
    value as number,
    { [attribute]: key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) },
  ]);
}
