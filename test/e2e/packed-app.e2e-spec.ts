// The README's promise, checked as a newcomer meets it: `npm pack` this
// repository, make a fresh Nest 11 app and a fresh Nest 12 app (the files `nest new`
// writes: Nest 11's, and Nest 12's CommonJS one, `nest new --type cjs`), install the
// tarball in each with the README's install line for that major (for Nest 12 after
// adding the README's package.json block, golevelup's overrides), write the README's
// marked code blocks (`<!-- file: src/… -->`) into it, compile it with tsc, boot it
// against the broker and run the README's Jest example in it. Only src/main.ts
// (below) is not from the README: the glue every reader writes differently.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { BROKER_URL, uniqueName } from '../support/broker';
import { rabbitmqctl } from '../support/rabbitmqctl';
import { readme, readmeFiles, readmeInstallArgs, readmePackageJson } from '../support/readme';

const ROOT = join(__dirname, '..', '..');
const NAME = 'nestjs-mo-amqp';
/** npm's cache (~/.npm, filled by this repository's `npm ci`) serves what it has. */
const OFFLINE_FIRST = ['--prefer-offline', '--no-audit', '--no-fund'];

/** A fresh app as `nest new` writes it, less what this test does not need (lint, e2e, ts-loader). */
interface FreshApp {
  nest: 11 | 12;
  /** Which `nest new`, for the test names. */
  made: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  /** More of its package.json (Nest 11 keeps Jest's configuration there). */
  packageJson: Record<string, unknown>;
  /** Its other files, by path. */
  files: Record<string, string>;
  /** tsc flags of the other choice `nest new` offers (Nest 11: --strict; Nest 12: --strict false). */
  otherStrictness: string[];
  /** Its `npm test`: the command and arguments. */
  test: [string, ...string[]];
  /** Whether its Jest can load the app's Nest here (false: README.md says why). */
  jestLoadsNest: boolean;
}

const NEST_COMPILER_OPTIONS = {
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
};
const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n';

// @nestjs/schematics 11.1, application/files/ts, not --strict.
const NEST_11: FreshApp = {
  nest: 11,
  made: 'Nest 11 app (`nest new`)',
  dependencies: {
    '@nestjs/common': '^11.0.1',
    '@nestjs/core': '^11.0.1',
    '@nestjs/platform-express': '^11.0.1',
    'reflect-metadata': '^0.2.2',
    rxjs: '^7.8.1',
  },
  devDependencies: {
    '@nestjs/testing': '^11.0.1',
    '@types/jest': '^30.0.0',
    '@types/node': '^24.0.0',
    jest: '^30.0.0',
    'ts-jest': '^29.2.5',
    typescript: '^5.7.3',
  },
  packageJson: {
    jest: {
      moduleFileExtensions: ['js', 'json', 'ts'],
      rootDir: 'src',
      testRegex: '.*\\.spec\\.ts$',
      transform: { '^.+\\.(t|j)s$': 'ts-jest' },
      collectCoverageFrom: ['**/*.(t|j)s'],
      coverageDirectory: '../coverage',
      testEnvironment: 'node',
    },
  },
  files: {
    'tsconfig.json': json({
      compilerOptions: {
        ...NEST_COMPILER_OPTIONS,
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
    }),
    'tsconfig.build.json': json({
      extends: './tsconfig.json',
      exclude: ['node_modules', 'test', 'dist', '**/*spec.ts'],
    }),
  },
  otherStrictness: ['--noImplicitAny', '--strictBindCallApply', '--noFallthroughCasesInSwitch'],
  test: ['npx', 'jest'],
  jestLoadsNest: true,
};

/** Jest 30 loads an ES module from require() on Node 24.9+ only (with --experimental-vm-modules). */
const [nodeMajor, nodeMinor] = process.versions.node.split('.').map(Number);
const JEST_REQUIRES_ESM = nodeMajor > 24 || (nodeMajor === 24 && nodeMinor >= 9);

// @nestjs/schematics 12.0, application/files/ts (`--type cjs`; the default is ESM with vitest), strict.
const NEST_12: FreshApp = {
  nest: 12,
  made: 'Nest 12 CommonJS app (`nest new --type cjs`)',
  dependencies: {
    '@nestjs/common': '^12.0.1',
    '@nestjs/core': '^12.0.1',
    '@nestjs/platform-express': '^12.0.1',
    'reflect-metadata': '^0.2.2',
    rxjs: '^7.8.1',
  },
  devDependencies: {
    '@nestjs/testing': '^12.0.1',
    '@types/jest': '^30.0.0',
    '@types/node': '^24.0.0',
    jest: '^30.0.0',
    'ts-jest': '^29.4.0',
    'ts-node': '^10.9.2', // Jest reads jest.config.ts with it
    typescript: '^6.0.2',
  },
  packageJson: {},
  files: {
    'tsconfig.json': json({
      compilerOptions: {
        ...NEST_COMPILER_OPTIONS,
        types: ['node', 'jest'],
        sourceMap: true,
        outDir: './dist',
        rootDir: '.',
        incremental: true,
        skipLibCheck: true,
        strict: true,
        strictPropertyInitialization: false,
      },
    }),
    'tsconfig.build.json': json({
      extends: './tsconfig.json',
      compilerOptions: { rootDir: './src' },
      include: ['src'],
      exclude: ['node_modules', 'test', 'dist', '**/*spec.ts'],
    }),
    'jest.config.ts': `import type { Config } from 'jest';
import { pathsToModuleNameMapper } from 'ts-jest';
import ts from 'typescript';

const { config: tsconfig } = ts.readConfigFile('./tsconfig.json', ts.sys.readFile);
const paths = tsconfig?.compilerOptions?.paths ?? {};

const config: Config = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: '.',
  testRegex: '.*\\.spec\\.ts$',
  transform: {
    '^.+\\.(t|j)s$': 'ts-jest',
  },
  moduleNameMapper: pathsToModuleNameMapper(paths, { prefix: '<rootDir>/' }),
  collectCoverageFrom: ['src/**/*.(t|j)s', 'libs/**/*.(t|j)s', 'apps/**/*.(t|j)s'],
  coverageDirectory: './coverage',
  testEnvironment: 'node',
};

export default config;
`,
  },
  otherStrictness: ['--strict', 'false'],
  test: ['node', '--experimental-vm-modules', './node_modules/jest/bin/jest.js'],
  jestLoadsNest: JEST_REQUIRES_ESM,
};

// Not from the README: registers its providers, calls its @MoEvent method once,
// prints what its consumer received, and stops.
const GLUE = `import { randomUUID } from 'node:crypto';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MoChangeMessage, MoEventMessage } from '${NAME}';
import { AppModule } from './app.module';
import { EngagementSync } from './engagement-sync';
import { EngagementService } from './engagement.service';
import { Payroll } from './payroll';

@Module({ imports: [AppModule], providers: [EngagementService, Payroll, EngagementSync] })
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
  const sync = app.get(EngagementSync);
  const changes: MoChangeMessage[] = [];
  const onChange = sync.onEngagement.bind(sync);
  sync.onEngagement = async (change) => {
    await onChange(change);
    changes.push(change);
  };
  const dto = { employeeUuid: randomUUID(), orgUnitUuid: randomUUID(), validFrom: '2021-08-01' };
  const engagement = await app.get(EngagementService).create(dto);
  await sync.announce(engagement.uuid);
  for (const deadline = Date.now() + 10_000; (received.length < 2 || changes.length < 1) && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await app.close();
  console.log('RESULT ' + JSON.stringify({ engagement, received, changes }));
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

describe.each([NEST_11, NEST_12])('the packed package in a fresh $made, set up as README.md says', (fresh) => {
  const markdown = readme();
  const files = readmeFiles(markdown);
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  // This repository's amqplib. Where scripts/amqplib-override.sh put in another (CI's amqplib 2 run),
  // the app puts it in as docs/hardening.md tells users to: an `overrides` entry.
  const amqplib = lock.packages['node_modules/amqplib'].version as string;
  const overridden = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).overrides?.amqplib !== undefined;
  let work: string;
  let app: string;
  let tarball: string;

  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'dist', 'index.js'))) await must(run('npm', ['run', 'build'], ROOT), 'npm run build');
    work = mkdtempSync(join(tmpdir(), `mo-amqp-packed-app-${fresh.nest}-`));
    // --ignore-scripts: no `prepare` (a build); dist/ is what `npm test` just built.
    const packed = await must(
      run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT),
      'npm pack',
    );
    tarball = join(work, JSON.parse(packed.stdout)[0].filename);

    app = join(work, 'app');
    writeFile(
      join(app, 'package.json'),
      json({
        name: 'fresh-app',
        version: '0.0.1',
        private: true,
        license: 'UNLICENSED',
        dependencies: fresh.dependencies,
        devDependencies: fresh.devDependencies,
        ...fresh.packageJson,
        ...(overridden && { overrides: { amqplib } }),
      }),
    );
    for (const [path, text] of Object.entries(fresh.files)) writeFile(join(app, path), text);
    for (const [path, code] of files) writeFile(join(app, path), code);
    writeFile(join(app, 'src', 'main.ts'), GLUE);
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('marks the README blocks the app is made of', () => {
    expect([...files.keys()].sort()).toEqual([
      'src/app.module.ts',
      'src/engagement-sync.ts',
      'src/engagement.service.spec.ts',
      'src/engagement.service.ts',
      'src/payroll.ts',
    ]);
  });

  it(`installs with the README's lines for Nest ${fresh.nest}, with one copy of golevelup: the package's peer`, async () => {
    // What the README has the reader add to package.json first (Nest 12: golevelup's overrides).
    const added = readmePackageJson(markdown, `Nest ${fresh.nest}`);
    if (fresh.nest === 12) expect(added).toEqual({ overrides: expect.any(Object) });
    if (added) {
      const manifest = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'));
      // (beside an amqplib override the app may have already)
      const overrides = { ...manifest.overrides, ...(added.overrides as Record<string, unknown> | undefined) };
      writeFile(join(app, 'package.json'), json({ ...manifest, ...added, overrides }));
    }
    const args = readmeInstallArgs(markdown, NAME, fresh.nest).map((arg) => (arg === NAME ? tarball : arg));
    await must(run('npm', [...args, ...OFFLINE_FIRST], app, {}, 240_000), `npm ${args.join(' ')}`);

    const nest = await must(run(process.execPath, ['-p', "require('@nestjs/core/package.json').version"], app), 'node');
    expect(nest.stdout.trim()).toMatch(new RegExp(`^${fresh.nest}\\.`));
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
    if (fresh.nest !== 11) return;
    // An app with another golevelup: npm refuses to add the package (its peer range, ~9.0.2),
    // where a plain dependency would get a second copy of its own, silently.
    const other = join(work, 'other-app');
    writeFile(join(other, 'package.json'), JSON.stringify({ dependencies: { '@golevelup/nestjs-rabbitmq': '9.0.0' } }));
    const refused = await run('npm', ['install', '--dry-run', tarball, ...OFFLINE_FIRST], other, {}, 60_000);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('ERESOLVE unable to resolve dependency tree');
    expect(refused.stderr).toMatch(/peer @golevelup\/nestjs-rabbitmq@"[^"]+" from nestjs-mo-amqp/);
  }, 300_000);

  it("compiles with `nest new`'s tsconfig (isolatedModules, emitDecoratorMetadata), and with the other strictness", async () => {
    await must(run('npx', ['tsc', '-p', 'tsconfig.build.json'], app), 'tsc (build)');
    await must(run('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit'], app), 'tsc');
    await must(
      run('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit', ...fresh.otherStrictness], app),
      'tsc (strictness)',
    );
  }, 120_000);

  it("boots against RabbitMQ: the @MoEvent method's two events and the subsystem message reach the README's consumers", async () => {
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
      const { engagement, received, changes } = JSON.parse(line[1]);
      expect(changes).toEqual([
        expect.objectContaining({ objectType: 'engagement', uuid: engagement.uuid, routingKey: 'engagement' }),
      ]);

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

  it('passes the README\'s "Testing your app" example with Jest and ts-jest, where Jest loads Nest', async () => {
    const tested = await run(fresh.test[0], fresh.test.slice(1), app);
    if (!fresh.jestLoadsNest) {
      // As README.md says: Nest 12's ESM stops Jest (CommonJS test files) before this package.
      expect(tested.code).not.toBe(0);
      expect(tested.stderr).toContain('Must use import to load ES Module');
      expect(tested.stderr).toContain(join('node_modules', '@nestjs', 'testing'));
      return;
    }
    if (tested.code !== 0) throw new Error(`jest exited ${tested.code}:\n${tested.stdout}\n${tested.stderr}`);
    expect(tested.stderr).toContain('announces a new engagement to the person and the unit');
    expect(tested.stderr).toMatch(/Tests: +1 passed, 1 total/);
  }, 120_000);
});
