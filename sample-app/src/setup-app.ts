import { INestApplication, ValidationPipe } from '@nestjs/common';

/** What main.ts applies to the app; the e2e specs apply the same. */
export function setupApp(app: INestApplication): INestApplication {
  app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true }));
  return app;
}
