import { INestApplication, ValidationPipe } from '@nestjs/common';
import { trace } from '@opentelemetry/api';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** What main.ts applies to the app; the e2e specs apply the same. */
export function setupApp(app: INestApplication): INestApplication {
  app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true }));
  app.use(traceResponse);
  return app;
}

/**
 * Tells the caller the request's trace (W3C `traceresponse`), so a trace id
 * can be looked up beside the events it produced. Nothing without tracing.
 */
function traceResponse(_req: IncomingMessage, res: ServerResponse, next: () => void): void {
  const span = trace.getActiveSpan()?.spanContext();
  if (span && trace.isSpanContextValid(span)) {
    res.setHeader('traceresponse', `00-${span.traceId}-${span.spanId}-0${span.traceFlags & 1}`);
  }
  next();
}
