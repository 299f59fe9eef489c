// Preloaded (`node --require`) into a bench child: the OpenTelemetry SDK as an
// application registers it. The Node tracer provider (AsyncLocalStorage context,
// W3C trace context and baggage, every span sampled) with a BatchSpanProcessor,
// and a global MeterProvider whose periodic reader aggregates every measurement.
// Both exporters drop what they are given: the cost measured is recording, not sending.
const { metrics } = require('@opentelemetry/api');
const { ExportResultCode } = require('@opentelemetry/core');
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { BatchSpanProcessor, NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');

const dropping = {
  export: (_items, resultCallback) => resultCallback({ code: ExportResultCode.SUCCESS }),
  forceFlush: async () => {},
  shutdown: async () => {},
};

new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropping)] }).register();
metrics.setGlobalMeterProvider(
  new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter: dropping })] }),
);
