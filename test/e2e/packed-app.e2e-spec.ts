// The README's promise, checked as a newcomer meets it: `npm pack` this
// repository, make a fresh Nest 11 app (the tsconfig `nest new` writes, with
// isolatedModules and emitDecoratorMetadata), install the tarball with the
// README's install line, write the README's marked code blocks
// (`<!-- file: src/… -->`) into it, compile it with tsc, boot it against the
// broker and run the README's Jest example in it. Only src/main.ts (below) is
// not from the README: the glue every reader writes differently.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { BROKER_URL, uniqueName } from '../support/broker';
import { rabbitmqctl } from '../support/rabbitmqctl';
import { readme, readmeFiles, readmeInstallArgs } from '../support/readme';

const ROOT = join(__dirname, '..', '..');
const NAME = 'nestjs-mo-amqp';
/** npm's cache (~/.npm, filled by this repository's `npm ci`) serves what it has. */
const OFFLINE_FIRST = ['--prefer-offline', '--no-audit', '--no-fund'];

// What `nest new` writes for Nest 11 (@nestjs/schematics 11.1, application/files/ts, not --strict).
const NEST_TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    resolvePackageJsonExports: true,
    esModuleInterop: true,
    isolatedModules: true,
    declaration: true,
    removeComments: true,
    emitDecoratorMetadata: true,
    experimentalDecorators: true,
    allowSyntheticDefaultImports: true,
    target: 'ES2023',
    sourceMap: true,
    outDir: './dist',
    baseUrl: './',
    incremental: true,
    skipLibCheck: true,
    strictNullChecks: true,
    forceConsistentCasingInFileNames: true,
    noImplicitAny: false,
    strictBindCallApply: false,
    noFallthroughCasesInSwitch: false,
  },
};
const NEST_TSCONFIG_BUILD = {
  extends: './tsconfig.json',
  exclude: ['node_modules', 'test', 'dist', '**/*spec.ts'],
};
/** What `nest new --strict` turns on. */
const NEST_STRICT_FLAGS = ['--noImplicitAny', '--strictBindCallApply', '--noFallthroughCasesInSwitch'];
/** The "jest" section of the package.json `nest new` writes. */
const NEST_JEST = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: 'src',
  testRegex: '.*\\.spec\\.ts$',
  transform: { '^.+\\.(t|j)s$': 'ts-jest' },
  collectCoverageFrom: ['**/*.(t|j)s'],
  coverageDirectory: '../coverage',
  testEnvironment: 'node',
};
// The packages of a `nest new` app that this test needs, at this repository's locked versions.
const NEST_DEPENDENCIES = ['@nestjs/common', '@nestjs/core', '@nestjs/platform-express', 'reflect-metadata', 'rxjs'];
const NEST_DEV_DEPENDENCIES = ['@nestjs/testing', '@types/jest', '@types/node', 'jest', 'ts-jest', 'typescript'];

// Not from the README: registers its providers, calls its @MoEvent method once,
// prints what its consumer received, and stops.
const GLUE = `import { randomUUID } from 'node:crypto';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MoEventMessage } from '${NAME}';
import { AppModule } from './app.module';
import { EngagementService } from './engagement.service';
import { Payroll } from './payroll';

@Module({ imports: [AppModule], providers: [EngagementService, Payroll] })
class GlueModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(GlueModule);
  await app.init();
  const payroll = app.get(Payroll);
  const received: MoEventMessage[] = [];
  const onEngagement = payroll.onEngagement.bind(payroll);
  payroll.onEngagement = async (event) => {
    await onEngagement(event);
    received.push(event);
  };
  const dto = { employeeUuid: randomUUID(), orgUnitUuid: randomUUID(), validFrom: '2021-08-01' };
  const engagement = await app.get(EngagementService).create(dto);
  for (const deadline = Date.now() + 10_000; received.length < 2 && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await app.close();
  console.log('RESULT ' + JSON.stringify({ engagement, received }));
}

void main();
`;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never rejects. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeout = 120_000) {
  return new Promise<Ran>((resolve) =>
    execFile(
      command,
      args,
      { cwd, env: { ...cleanEnv(), ...env }, timeout, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    ),
  );
}

/** The result of a command that must succeed; else an error showing its output. */
async function must(ran: Promise<Ran>, what: string): Promise<Ran> {
  const done = await ran;
  if (done.code !== 0) throw new Error(`${what} exited ${done.code}:\n${done.stdout}\n${done.stderr}`);
  return done;
}

/**
 * A shell's environment, not npm's or Jest's: this test may run under `npm
 * test`, whose npm_* variables (prefix, package, config) and node_modules/.bin
 * on PATH would point the app's npm and npx at this repository.
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|JEST_|AMQP__)/i.test(key) || key === 'ENABLE_AMQP') continue;
    env[key] = value;
  }
  env.PATH = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => !dir.includes(join('node_modules', '.bin')))
    .join(delimiter);
  return env;
}

interface NpmTree {
  version?: string;
  dependencies?: Record<string, NpmTree>;
}

/** Every version of `name` in an `npm ls --json` tree, each once. */
function versionsIn(tree: NpmTree, name: string, found = new Set<string>()): string[] {
  for (const [dependency, node] of Object.entries(tree.dependencies ?? {})) {
    if (dependency === name && node.version) found.add(node.version);
    versionsIn(node, name, found);
  }
  return [...found].sort();
}

function writeFile(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

describe('the packed package in a fresh Nest 11 app, set up as README.md says', () => {
  const markdown = readme();
  const files = readmeFiles(markdown);
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  const locked = (names: string[]) =>
    Object.fromEntries(names.map((name) => [name, lock.packages[`node_modules/${name}`].version as string]));
  // This repository's amqplib. Where scripts/amqplib-override.sh put in another (CI's amqplib 2 run),
  // the app puts it in as docs/hardening.md tells users to: an `overrides` entry.
  const amqplib = lock.packages['node_modules/amqplib'].version as string;
  const overridden = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).overrides?.amqplib !== undefined;
  let work: string;
  let app: string;
  let tarball: string;

  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'dist', 'index.js'))) await must(run('npm', ['run', 'build'], ROOT), 'npm run build');
    work = mkdtempSync(join(tmpdir(), 'mo-amqp-packed-app-'));
    // --ignore-scripts: no `prepare` (a build); dist/ is what `npm test` just built.
    const packed = await must(
      run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT),
      'npm pack',
    );
    tarball = join(work, JSON.parse(packed.stdout)[0].filename);

    app = join(work, 'app');
    writeFile(
      join(app, 'package.json'),
      JSON.stringify(
        {
          name: 'fresh-app',
          version: '0.0.1',
          private: true,
          license: 'UNLICENSED',
          dependencies: locked(NEST_DEPENDENCIES),
          devDependencies: locked(NEST_DEV_DEPENDENCIES),
          ...(overridden && { overrides: { amqplib } }),
          jest: NEST_JEST,
        },
        null,
        2,
      ),
    );
    writeFile(join(app, 'tsconfig.json'), JSON.stringify(NEST_TSCONFIG, null, 2));
    writeFile(join(app, 'tsconfig.build.json'), JSON.stringify(NEST_TSCONFIG_BUILD, null, 2));
    for (const [path, code] of files) writeFile(join(app, path), code);
    writeFile(join(app, 'src', 'main.ts'), GLUE);
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('marks the README blocks the app is made of', () => {
    expect([...files.keys()].sort()).toEqual([
      'src/app.module.ts',
      'src/engagement.service.spec.ts',
      'src/engagement.service.ts',
      'src/payroll.ts',
    ]);
  });

  it("installs with the README's line, with one copy of golevelup: the package's peer", async () => {
    const args = readmeInstallArgs(markdown, NAME).map((arg) => (arg === NAME ? tarball : arg));
    await must(run('npm', [...args, ...OFFLINE_FIRST], app, {}, 240_000), `npm ${args.join(' ')}`);

    const copies = await must(
      run('npm', ['ls', '@golevelup/nestjs-rabbitmq', '--all', '--parseable'], app),
      'npm ls @golevelup/nestjs-rabbitmq',
    );
    expect(copies.stdout.trim().split('\n')).toEqual([join(app, 'node_modules', '@golevelup', 'nestjs-rabbitmq')]);
    // One amqplib, this repository's, for golevelup, amqp-connection-manager and the package alike.
    const amqplibs = await must(run('npm', ['ls', 'amqplib', '--all', '--json'], app), 'npm ls amqplib');
    expect(versionsIn(JSON.parse(amqplibs.stdout), 'amqplib')).toEqual([amqplib]);
    // What one import line gives: golevelup's own decorators and classes, the very same.
    const reexported = await must(
      run(
        process.execPath,
        [
          '-e',
          `const ours = require('${NAME}'), theirs = require('@golevelup/nestjs-rabbitmq');
           console.log(['RabbitSubscribe', 'AmqpConnection', 'Nack'].filter((k) => !ours[k] || ours[k] !== theirs[k]).join());`,
        ],
        app,
      ),
      'require',
    );
    expect(reexported.stdout.trim()).toBe('');
    // An app with another golevelup: npm refuses to add the package (its peer range, ~9.0.2),
    // where a plain dependency would get a second copy of its own, silently.
    const other = join(work, 'other-app');
    writeFile(join(other, 'package.json'), JSON.stringify({ dependencies: { '@golevelup/nestjs-rabbitmq': '9.0.0' } }));
    const refused = await run('npm', ['install', '--dry-run', tarball, ...OFFLINE_FIRST], other, {}, 60_000);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('ERESOLVE unable to resolve dependency tree');
    expect(refused.stderr).toMatch(/peer @golevelup\/nestjs-rabbitmq@"[^"]+" from nestjs-mo-amqp/);
  }, 300_000);

  it("compiles with `nest new`'s tsconfig (isolatedModules, emitDecoratorMetadata), and with --strict's flags", async () => {
    await must(run('npx', ['tsc', '-p', 'tsconfig.json'], app), 'tsc');
    await must(run('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit', ...NEST_STRICT_FLAGS], app), 'tsc (--strict)');
  }, 120_000);

  it("boots against RabbitMQ: the @MoEvent method's two events reach the README's consumer", async () => {
    // A virtual host of its own: the README's names (exchange os2mo, queue payroll.engagements)
    // meet no other test or run, and deleting it deletes all the app declared.
    const vhost = uniqueName('packed-app');
    const url = new URL(BROKER_URL);
    await rabbitmqctl('add_vhost', vhost);
    try {
      await rabbitmqctl('set_permissions', '-p', vhost, decodeURIComponent(url.username) || 'guest', '.*', '.*', '.*');
      url.pathname = `/${encodeURIComponent(vhost)}`;
      const env = { ENABLE_AMQP: 'true', AMQP__URL: url.toString() };
      const booted = await must(run(process.execPath, ['dist/main.js'], app, env, 60_000), 'node dist/main.js');
      const line = /^RESULT (.*)$/m.exec(booted.stdout);
      if (!line) throw new Error(`no RESULT line:\n${booted.stdout}\n${booted.stderr}`);
      const { engagement, received } = JSON.parse(line[1]);

      const byKey = (a: { routingKey: string }, b: { routingKey: string }) => a.routingKey.localeCompare(b.routingKey);
      expect(received.sort(byKey)).toEqual([
        expect.objectContaining({
          routingKey: 'employee.engagement.create',
          uuid: engagement.employeeUuid,
          objectUuid: engagement.uuid,
          timeText: '2021-08-01T00:00:00+00:00',
          redelivered: false,
        }),
        expect.objectContaining({
          routingKey: 'org_unit.engagement.create',
          uuid: engagement.orgUnitUuid,
          objectUuid: engagement.uuid,
          timeText: '2021-08-01T00:00:00+00:00',
          redelivered: false,
        }),
      ]);
    } finally {
      await rabbitmqctl('delete_vhost', vhost);
    }
  }, 90_000);

  it('passes the README\'s "Testing your app" example with Jest and ts-jest', async () => {
    const tested = await must(run('npx', ['jest'], app), 'jest');
    expect(tested.stderr).toContain('announces a new engagement to the person and the unit');
    expect(tested.stderr).toMatch(/Tests: +1 passed, 1 total/);
  }, 120_000);
});
