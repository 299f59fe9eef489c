import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import * as ts from 'typescript';
import { BROKER_URL, TestBroker } from '../support/broker';

const ROOT = join(__dirname, '..', '..');

/** A declaration file without its private members' names (they carry no type a user could reach). */
const publicText = (text: string) => text.replace(/^\s*private [^\n]*$/gm, '');
const run = promisify(execFile);

describe('the built package, required from the repository root', () => {
  beforeAll(() => {
    if (!existsSync(join(ROOT, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  });

  it('exports the public API', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pkg = require(ROOT);
    for (const name of [
      'MoAmqpModule',
      'MoEventsService',
      'MoEventValidationError',
      'MoPublishError',
      'moAmqpConfig',
    ]) {
      expect(pkg[name]).toBeDefined();
    }
    expect(pkg.MO_SEED_OBJECT_TYPES).toHaveLength(10);
    expect(pkg.MO_OS2MO_OBJECT_TYPES).toHaveLength(13);
    expect(pkg.MO_CHANGE_OBJECT_TYPES).toHaveLength(16);
  });

  it('has two entry points, the package and nestjs-mo-amqp/testing, and nothing else of dist/ is importable', async () => {
    const probe = (specifier: string) =>
      run(process.execPath, ['-e', `require(${JSON.stringify(specifier)}); console.log('ok')`], { cwd: ROOT }).then(
        ({ stdout }) => stdout.trim(),
        (err: { stderr: string }) => err.stderr,
      );
    expect(await probe('nestjs-mo-amqp')).toBe('ok');
    expect(await probe('nestjs-mo-amqp/testing')).toBe('ok');
    expect(await probe('nestjs-mo-amqp/dist/runtime/spooled-publisher')).toContain('ERR_PACKAGE_PATH_NOT_EXPORTED');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const testing = require(join(ROOT, 'dist', 'testing'));
    expect(Object.keys(testing).sort()).toEqual(['MoAmqpTestingModule', 'MoEventsRecorder']);
  });

  // The public face written out: a name added, renamed or dropped fails here and shows in review.
  // The values are what require() gives; the types are what the .d.ts adds (ResolvedMoDelayAgentOptions:
  // what loadMoDelayAgentOptionsFromEnv returns, as ResolvedMoAmqpOptions is loadMoAmqpOptionsFromEnv's).
  it('exports exactly these names, at runtime and in its declarations', () => {
    const entries = { main: join(ROOT, 'dist', 'index'), testing: join(ROOT, 'dist', 'testing', 'index') };
    const program = ts.createProgram(
      Object.values(entries).map((entry) => `${entry}.d.ts`),
      { noEmit: true, skipLibCheck: true, types: [] },
    );
    const checker = program.getTypeChecker();
    const face = (entry: string) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const values = Object.keys(require(entry)).sort();
      const module = checker.getSymbolAtLocation(program.getSourceFile(`${entry}.d.ts`)!)!;
      const declared = checker.getExportsOfModule(module).map((s) => s.name);
      return {
        values,
        types: declared.filter((name) => !values.includes(name)).sort(),
        undeclaredValues: values.filter((name) => !declared.includes(name)),
      };
    };
    expect(face(entries.main)).toEqual({
      values: [
        'AmqpConnection',
        'IsMoTime',
        'MO_ACTIONS',
        'MO_AMQP_OPTIONS',
        'MO_CHANGE_OBJECT_TYPES',
        'MO_HEADER_ATTEMPT',
        'MO_HEADER_EXCHANGE',
        'MO_HEADER_QUEUE',
        'MO_HEADER_REASON',
        'MO_HEADER_REQUEUED',
        'MO_HEADER_ROUTING_KEY',
        'MO_OBJECT_TYPES',
        'MO_OS2MO_ACTIONS',
        'MO_OS2MO_OBJECT_TYPES',
        'MO_SEED_ACTIONS',
        'MO_SEED_OBJECT_TYPES',
        'MO_SERVICES',
        'MO_VOCABULARIES',
        'MoAmqpConfigError',
        'MoAmqpConnectionError',
        'MoAmqpHealthIndicator',
        'MoAmqpModule',
        'MoChangeSubscribe',
        'MoDelayAgent',
        'MoDelayAgentModule',
        'MoEvent',
        'MoEventDecoratorError',
        'MoEventParseError',
        'MoEventSubscribe',
        'MoEventValidationError',
        'MoEventsService',
        'MoPublishError',
        'Nack',
        'RabbitSubscribe',
        'allMoRoutingKeys',
        'formatMoTime',
        'isMoAction',
        'isMoChangeObjectType',
        'isMoObjectType',
        'isMoService',
        'loadMoAmqpOptionsFromEnv',
        'loadMoDelayAgentOptionsFromEnv',
        'moAmqpConfig',
        'moRoutingKey',
        'normalizeMoTime',
        'outboxMigrationSql',
        'parseMoChange',
        'parseMoEvent',
        'parseMoRoutingKey',
        'parseMoTime',
      ],
      types: [
        'ConsumeMessage',
        'MoAction',
        'MoActionOf',
        'MoAmqpConfigProblem',
        'MoAmqpHealthResult',
        'MoAmqpModuleExtras',
        'MoAmqpModuleOptions',
        'MoAmqpOptionsFactory',
        'MoChangeMessage',
        'MoChangeObjectType',
        'MoChangeSubscribeOptions',
        'MoConsumerQueueOptions',
        'MoDelayAgentOptions',
        'MoDelayAgentStats',
        'MoEventCounters',
        'MoEventMessage',
        'MoEventMethodDecorator',
        'MoEventOptions',
        'MoEventSelectors',
        'MoEventSubscribeOptions',
        'MoObjectType',
        'MoObjectTypeOf',
        'MoPublishFailure',
        'MoPublishResult',
        'MoPublishVocabulary',
        'MoRoutingKey',
        'MoRoutingKeyParts',
        'MoService',
        'MoSpoolStats',
        'MoVocabulary',
        'MoVocabularyRegister',
        'ParsedMoTime',
        'ResolvedMoAmqpOptions',
        'ResolvedMoDelayAgentOptions',
      ],
      undeclaredValues: [],
    });
    expect(face(entries.testing)).toEqual({
      values: ['MoAmqpTestingModule', 'MoEventsRecorder'],
      types: ['RecordedMoChange', 'RecordedMoEvent'],
      undeclaredValues: [],
    });
  });

  it("declares MoEventsService's public face only: the runtime behind it is in no public type", () => {
    const file = join(ROOT, 'dist', 'publishing', 'mo-events.service.d.ts');
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
    const service = source.statements.find(
      (s): s is ts.ClassDeclaration => ts.isClassDeclaration(s) && s.name?.text === 'MoEventsService',
    );
    const visible = (service?.members ?? [])
      .filter((m) => !ts.getModifiers(m as ts.HasModifiers)?.some((k) => k.kind === ts.SyntaxKind.PrivateKeyword))
      .map((m) => (ts.isConstructorDeclaration(m) ? 'constructor' : (m.name as ts.Identifier).text));
    expect(visible.sort()).toEqual(['connected', 'counters', 'enabled', 'publish', 'publishChange', 'spoolStats']);
    // Nothing that reaches the runtime or the outbox relay: their types appear in no declaration a user can import.
    const reachable = new Map<string, string>();
    const follow = (path: string) => {
      if (reachable.has(path)) return;
      const text = readFileSync(path, 'utf8');
      reachable.set(path, text);
      for (const [, specifier] of text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
        const target = join(dirname(path), specifier);
        follow(existsSync(`${target}.d.ts`) ? `${target}.d.ts` : join(target, 'index.d.ts'));
      }
    };
    follow(join(ROOT, 'dist', 'index.d.ts'));
    follow(join(ROOT, 'dist', 'testing', 'index.d.ts'));
    expect(reachable.size).toBeGreaterThan(20);
    for (const [path, text] of reachable) {
      expect({
        path,
        internal: publicText(text).match(
          /\b(?:MoAmqpRuntime|MoOutboxRelay\w*)\b|\b(?:abortStart|onShutdown|forward|count)\(/g,
        ),
      }).toEqual({
        path,
        internal: null,
      });
    }
  });

  it('publishes what a plain AMQP client bound # on exchange os2mo receives, as the contract says', async () => {
    const broker = await TestBroker.connect();
    const collector = await broker.collect('os2mo', '#');
    const [person, engagement, unit] = [randomUUID(), randomUUID(), randomUUID()];

    const { stdout } = await run(
      process.execPath,
      [join(ROOT, 'test', 'fixtures', 'package-user.js'), person, engagement, unit],
      { env: { ...process.env, ENABLE_AMQP: 'True', AMQP__URL: BROKER_URL, AMQP__EXCHANGE: '' }, timeout: 20_000 },
    );
    const { results, created, failed, counters } = JSON.parse(stdout);
    expect(results.map((r: { status: string }) => r.status)).toEqual(['confirmed', 'confirmed']);
    expect(created).toEqual({ uuid: engagement, employeeUuid: person, orgUnitUuid: unit, validFrom: '2021-08-01' });
    expect(failed).toBe('the write failed');
    expect(counters).toEqual({
      published: 4,
      confirmed: 4,
      spooled: 0,
      resent: 0,
      disabled: 0,
      invalid: 0,
      failed: 0,
      outboxed: 0,
      relayed: 0,
      decoratorFailures: 0,
      retried: 0,
      deadLettered: 0,
    });

    // os2mo is shared with any other publisher on this broker: look at ours only.
    const ours = () =>
      collector.messages.filter((m) => m.content.toString().includes(person) || m.content.toString().includes(unit));
    const deadline = Date.now() + 5_000;
    while (ours().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    const messages = ours();
    expect(messages.map((m) => [m.fields.exchange, m.fields.routingKey, m.content.toString()])).toEqual([
      ['os2mo', 'employee.engagement.create', `{"uuid": "${person}", "time": "2019-03-24T13:02:15.132000+00:00"}`],
      [
        'os2mo',
        'org_unit.engagement.create',
        `{"uuid": "${unit}", "object_uuid": "${engagement}", "time": "2021-07-27T00:00:00+02:00"}`,
      ],
      // From the @MoEvent method; the one that rejected sent nothing.
      [
        'os2mo',
        'employee.engagement.create',
        `{"uuid": "${person}", "object_uuid": "${engagement}", "time": "2021-08-01T00:00:00+00:00"}`,
      ],
      [
        'os2mo',
        'org_unit.engagement.create',
        `{"uuid": "${unit}", "object_uuid": "${engagement}", "time": "2021-08-01T00:00:00+00:00"}`,
      ],
    ]);
    for (const message of messages) {
      expect(message.properties).toMatchObject({ deliveryMode: 2, contentType: 'application/json' });
      expect(message.properties.messageId).toMatch(/^[0-9a-f-]{36}$/);
      expect(typeof message.properties.timestamp).toBe('number');
    }
    expect(messages[0].properties.messageId).toBe(results[0].messageId);
    expect(messages[1].properties.messageId).toBe(results[1].messageId);
    // Not broker.close(): that would delete os2mo, which is not this test's alone.
    await broker.connection.close();
  });
});
