import { LoggerService, ModuleMetadata, Provider } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { MoAmqpModule, MoAmqpModuleOptions } from '../../lib';
import { BROKER_URL } from './broker';

/** Boots `MoAmqpModule.forRoot(options)` (plus `imports` and `providers`) the way an app would, hooks included. */
export async function bootApp(
  options: MoAmqpModuleOptions,
  {
    providers = [],
    imports = [],
    logger,
  }: { providers?: Provider[]; imports?: ModuleMetadata['imports']; logger?: LoggerService } = {},
): Promise<TestingModule> {
  // Each app spools into a directory of its own, unless the test chose one; and talks to the
  // tests' broker (of the BROKER version), unless the test chose where.
  const where = options.url === undefined && options.host === undefined && options.port === undefined;
  const withSpool = { spoolDir: testSpoolDir(), ...(where && { url: BROKER_URL }), ...options };
  const builder = Test.createTestingModule({ imports: [MoAmqpModule.forRoot(withSpool), ...imports], providers });
  if (logger) builder.setLogger(logger);
  const app = await builder.compile();
  try {
    await app.init();
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  return app;
}

/** Runs `fn` with environment variables set, then restores them. */
export async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const assign = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  assign(vars);
  try {
    return await fn();
  } finally {
    assign(saved);
  }
}

/** A fresh directory for a spool no other test shares (in the test file's temporary working directory). */
export function testSpoolDir(): string {
  return mkdtempSync(join(process.cwd(), 'spool-'));
}
