import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BROKER_URL, Collector, TestBroker, uniqueName } from '../support/broker';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const run = promisify(execFile);
const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, AMQP__URL: BROKER_URL, ...env },
      timeout: 20_000,
      maxBuffer: 10 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('mo-amqp with hostile input', () => {
  let broker: TestBroker;
  let exchange: string;
  let collector: Collector;

  beforeAll(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('cli-hostile');
    collector = await broker.collect(exchange);
  });

  afterAll(async () => {
    await broker.close();
  });

  // Each: the arguments, the environment, the exit code, and what stderr must say.
  it.each<[string, string[], Record<string, string>, number, string]>([
    ['an unknown command', ['publsh'], {}, 2, 'unknown command "publsh"; the commands are tail, publish, delay-agent'],
    ['an unknown option', ['publish', '--tiem', 'x', 'employee.it.create', UUID], {}, 2, "Unknown option '--tiem'"],
    ['a missing UUID', ['publish', 'employee.it.create'], {}, 2, 'needs a routing key and a UUID, got 1'],
    ['a routing key of two words', ['publish', 'employee.create', UUID], {}, 2, 'three words'],
    ['a word outside the vocabulary', ['publish', 'employee.it.upsert', UUID], {}, 2, 'action'],
    ['a word of the other vocabulary', ['publish', 'employee.it.edit', UUID], {}, 2, 'AMQP__VOCABULARY=os2mo'],
    ['a malformed UUID', ['publish', 'employee.it.create', 'c390b9a2'], {}, 2, 'canonical 8-4-4-4-12'],
    ['a UUID with a newline', ['publish', 'employee.it.create', `${UUID}\nx`], {}, 2, 'canonical 8-4-4-4-12'],
    ['an impossible time', ['publish', 'employee.it.create', UUID, '--time', '2021-02-30'], {}, 2, 'options.time'],
    [
      'a time with offset seconds',
      ['publish', 'employee.it.create', UUID, '--time', '2021-07-27T00:00:00+01:00:30'],
      {},
      2,
      'options.time',
    ],
    ['a malformed object UUID', ['publish', 'employee.it.create', UUID, '--object-uuid', 'nope'], {}, 2, 'objectUuid'],
    ['an exchange name with a space', ['publish', 'employee.it.create', UUID, '--exchange', 'a b'], {}, 2, 'exchange'],
    [
      'a bad port',
      ['publish', 'employee.it.create', UUID],
      { AMQP__URL: '', AMQP__PORT: '99999' },
      2,
      'AMQP__PORT: received 99999',
    ],
    [
      'a bad boolean',
      ['publish', 'employee.it.create', UUID],
      { AMQP__EXCHANGE_DURABLE: 'maybe' },
      2,
      'AMQP__EXCHANGE_DURABLE',
    ],
    [
      'a bad vocabulary',
      ['publish', 'employee.it.create', UUID],
      { AMQP__VOCABULARY: 'klingon' },
      2,
      'AMQP__VOCABULARY',
    ],
    [
      'a bad time zone',
      ['publish', 'employee.it.create', UUID],
      { AMQP__TIME_ZONE: 'Mars/Olympus' },
      2,
      'AMQP__TIME_ZONE',
    ],
    [
      'a URL that is not AMQP',
      ['publish', 'employee.it.create', UUID],
      { AMQP__URL: 'http://localhost' },
      2,
      'AMQP__URL',
    ],
    [
      'a TLS file with a plain URL',
      ['publish', 'employee.it.create', UUID],
      { AMQP__TLS_CA_FILE: '/etc/hostname' },
      2,
      'AMQP__TLS_CA_FILE',
    ],
    [
      'the delayed exchange equal to the exchange',
      ['publish', 'employee.it.create', UUID],
      { AMQP__EXCHANGE: 'same', AMQP__DELAYED_EXCHANGE: 'same' },
      2,
      'its own input',
    ],
    ['a bad agent prefix', ['delay-agent'], { AMQP__DELAY_PREFIX: 'amq.x' }, 2, 'AMQP__DELAY_PREFIX'],
  ])('%s: a clear message and exit code, nothing sent', async (_name, args, env, code, said) => {
    const withExchange =
      args[0] === 'publish' && !args.includes('--exchange') ? [...args, '--exchange', exchange] : args;
    const result = await cli(withExchange, { AMQP__EXCHANGE: exchange, ...env });
    expect(result.code).toBe(code);
    expect(result.stderr).toContain(said);
    expect(result.stderr).not.toMatch(/^\s+at /m); // an explanation, not a stack trace
  });

  it('cuts a huge argument short in its message instead of echoing it', async () => {
    const huge = 'x'.repeat(100_000);
    const result = await cli(['publish', 'employee.it.create', huge, '--exchange', exchange]);
    expect(result.code).toBe(2);
    expect(result.stderr.length).toBeLessThan(2_000);
  });

  it('sent nothing for any of them', async () => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(collector.messages).toHaveLength(0);
    // And a good command still works after all that.
    expect((await cli(['publish', 'employee.it.create', UUID, '--exchange', exchange])).code).toBe(0);
    await collector.waitFor(1);
  });
});
