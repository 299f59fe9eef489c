import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ConsoleSpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';

/**
 * OpenTelemetry for the sample app, started by main.ts before anything else
 * loads (the HTTP instrumentation patches `http` as it is first required).
 * Every request gets a trace; nestjs-mo-amqp carries it in each event's
 * `traceparent` to the consumers and through the delay agent. A real app
 * would export spans to its collector (OTLP); here they are printed with
 * OTEL_TRACES_EXPORTER=console and otherwise only their ids are shown.
 * METRICS_PORT serves the metrics at http://127.0.0.1:<port>/metrics for Prometheus.
 */
export function startTelemetry(env: NodeJS.ProcessEnv = process.env): void {
  const provider = new NodeTracerProvider({
    spanProcessors: env.OTEL_TRACES_EXPORTER === 'console' ? [new SimpleSpanProcessor(new ConsoleSpanExporter())] : [],
  });
  // The AsyncLocalStorage context manager and the W3C trace context (and baggage) propagators.
  provider.register();
  registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });
  if (env.METRICS_PORT) {
    const exporter = new PrometheusExporter({ host: '127.0.0.1', port: Number(env.METRICS_PORT) });
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [exporter] }));
  }
}
