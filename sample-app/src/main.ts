// First: the instrumentations patch modules as they are first required.
import { startTelemetry } from './tracing';
startTelemetry();

import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { setupApp } from './setup-app';

async function bootstrap(): Promise<void> {
  // abortOnError: false turns a start-up failure into an exception we report, not a core dump.
  const app = setupApp(await NestFactory.create(AppModule, { abortOnError: false }));
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  Logger.log(`Sample app listening on http://127.0.0.1:${port}`, 'SampleApp');
}

bootstrap().catch((err: unknown) => {
  Logger.error(err instanceof Error ? err.message : String(err), 'SampleApp');
  process.exit(1);
});
