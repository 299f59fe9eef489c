import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { allMoRoutingKeys } from '../../lib';
import { BROKER_URL, TestBroker, closedPort, uniqueName } from '../support/broker';
import { until } from '../support/until';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const run = promisify(execFile);

/** Runs `mo-amqp` to the end: its exit code and output. */
async function cli(args: string[], env: Record<string, string> = {}, cwd = process.cwd()) {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      cwd,
      env: { ...process.env, AMQP__URL: BROKER_URL, ...env },
      timeout: 20_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Starts `mo-amqp tail` and resolves once it says it is waiting. */
async function startTail(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; lines: string[]; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'tail', ...args], {
    env: { ...process.env, AMQP__URL: BROKER_URL, ...env },
  });
  const lines: string[] = [];
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('Waiting for messages')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`tail exited with ${code}: ${stderr}`)));
  });
  return { child, lines, stderr: () => stderr };
}

describe('the mo-amqp command', () => {
  let broker: TestBroker;
  let exchange: string;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('cli');
    broker.track(exchange);
  });

  afterEach(async () => {
    await broker.close();
  });

  it('tail prints what publish sent, as [routing_key] body, and exits cleanly on Ctrl-C', async () => {
    const { child, lines } = await startTail(['--exchange', exchange]);
    const uuid = randomUUID();
    const published = await cli([
      'publish',
      'employee.engagement.create',
      uuid,
      '--time',
      '2021-07-27T00:00:00+02:00',
      '--exchange',
      exchange,
    ]);
    expect(published.code).toBe(0);
    expect(published.stdout).toMatch(/^confirmed \[employee\.engagement\.create\] .* message_id=[0-9a-f-]{36}\n$/);

    await until(() => lines.length === 1, 'the line from tail');
    expect(lines).toEqual([`[employee.engagement.create] {"uuid": "${uuid}", "time": "2021-07-27T00:00:00+02:00"}`]);
    child.kill('SIGINT');
    const [code] = await new Promise<[number | null]>((resolve) => child.on('exit', (c) => resolve([c])));
    expect(code).toBe(0);
  });

  it('tail by default, and with the seed’s binding #.#.# (bound as #, which RabbitMQ 4.3 takes), sees every routing key; a narrower binding only its own', async () => {
    const all = await startTail(['--exchange', exchange]);
    const seeds = await startTail(['--exchange', exchange, '--binding', '#.#.#']);
    const creates = await startTail(['--exchange', exchange, '--binding', 'org_unit.*.create']);
    expect(all.stderr()).toContain('(binding #)');
    expect(seeds.stderr()).toContain('binding "#", which matches what "#.#.#" does');
    expect(seeds.stderr()).toContain('(binding #)');
    const body = Buffer.from(`{"uuid": "${randomUUID()}", "time": "2021-07-27"}`);
    for (const key of allMoRoutingKeys()) broker.channel.publish(exchange, key, body);
    await until(() => all.lines.length === 60 && seeds.lines.length === 60, 'sixty lines each');
    await until(() => creates.lines.length === 10, 'ten lines');
    expect(new Set(all.lines.map((l) => l.slice(1, l.indexOf(']')))).size).toBe(60);
    expect(seeds.lines).toEqual(all.lines);
    expect(creates.lines.every((l) => /^\[org_unit\.[a-z_]+\.create\] /.test(l))).toBe(true);
    for (const tail of [all, seeds, creates]) tail.child.kill('SIGTERM');
  });

  it('publish also takes --object-uuid, and a plain client receives the contract’s message', async () => {
    const collector = await broker.collect(exchange);
    const [uuid, objectUuid] = [randomUUID(), randomUUID()];
    const result = await cli(['publish', 'org_unit.address.update', uuid, '--object-uuid', objectUuid], {
      AMQP__EXCHANGE: exchange,
      AMQP__TIME_ZONE: 'Europe/Copenhagen',
    });
    expect(result.code).toBe(0);
    const [message] = await collector.waitFor(1);
    const body = JSON.parse(message.content.toString());
    expect(body).toEqual({ uuid, time: expect.stringMatching(/\+0[12]:00$/), object_uuid: objectUuid });
    expect(message.properties).toMatchObject({ deliveryMode: 2, contentType: 'application/json' });
  });

  it('publish follows AMQP__VOCABULARY: OS2mo’s words and object_uuid there, each refusal naming the vocabularies', async () => {
    const collector = await broker.collect(exchange);
    const env = { AMQP__VOCABULARY: 'os2mo', AMQP__EXCHANGE: exchange };
    const [uuid, objectUuid] = [randomUUID(), randomUUID()];
    const sent = await cli(
      ['publish', 'employee.kle.terminate', uuid, '--object-uuid', objectUuid, '--time', '2021-07-27'],
      env,
    );
    expect(sent.code).toBe(0);
    expect(sent.stderr).toBe(`mo-amqp publish: RabbitMQ at ${BROKER_URL} (settings from the environment)\n`);
    const [message] = await collector.waitFor(1);
    expect(message.content.toString()).toBe(
      `{"uuid": "${uuid}", "object_uuid": "${objectUuid}", "time": "2021-07-27T00:00:00+00:00"}`,
    );

    const seedWord = await cli(['publish', 'employee.it.update', uuid, '--object-uuid', objectUuid], env);
    expect(seedWord.code).toBe(2);
    expect(seedWord.stderr).toContain(
      'action: received "update"; allowed: one of create, edit, terminate, refresh (the os2mo vocabulary, ' +
        'AMQP__VOCABULARY=os2mo); "update" is a word of the seed vocabulary: set AMQP__VOCABULARY=seed',
    );
    const noObject = await cli(['publish', 'employee.it.edit', uuid], env);
    expect(noObject.code).toBe(2);
    expect(noObject.stderr).toContain('options.objectUuid: received undefined');
    expect(noObject.stderr).toContain('requires object_uuid');
    const os2moWord = await cli(['publish', 'employee.owner.create', uuid], { AMQP__EXCHANGE: exchange });
    expect(os2moWord.stderr).toContain('"owner" is a word of the os2mo vocabulary: set AMQP__VOCABULARY=os2mo');
  });

  it('publish with a one-word routing key sends OS2mo’s AMQP-subsystem message: the UUID as a JSON string, persistent, confirmed', async () => {
    const bound = await broker.collect(exchange, 'engagement');
    const uuid = randomUUID();
    // Upper case in, OS2mo's str(uuid) (lower case) out.
    const sent = await cli(['publish', 'engagement', uuid.toUpperCase(), '--exchange', exchange]);
    expect(sent.code).toBe(0);
    const printed = /^confirmed \[engagement\] "([0-9a-f-]{36})" message_id=([0-9a-f-]{36})\n$/.exec(sent.stdout);
    expect(printed?.[1]).toBe(uuid);
    const [message] = await bound.waitFor(1);
    expect(Buffer.compare(message.content, Buffer.from(`"${uuid}"`))).toBe(0);
    expect(message.fields.routingKey).toBe('engagement');
    expect(message.properties.deliveryMode).toBe(2);
    expect(message.properties.messageId).toBe(printed?.[2]);
  });

  it('publish takes each subsystem word, refuses one that is not (naming the words) and --time or --object-uuid with it, sending nothing then', async () => {
    const collector = await broker.collect(exchange);
    const uuid = randomUUID();
    const env = { AMQP__EXCHANGE: exchange };
    const typo = await cli(['publish', 'engagment', uuid], env);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('objectType: received "engagment"; allowed: one of address, association, class');
    expect(typo.stderr).toContain('engagement');
    expect(typo.stderr).toContain('rolebinding');
    for (const [option, value] of [
      ['--time', '2021-01-01'],
      ['--object-uuid', randomUUID()],
    ]) {
      const refused = await cli(['publish', 'engagement', uuid, option, value], env);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`${option} with the one-word routing key "engagement"`);
      expect(refused.stderr).toContain('an AMQP-subsystem message has no time and no object_uuid');
      expect(refused.stdout).toBe('');
    }
    const fourWords = await cli(['publish', 'employee.engagement.create.now', uuid], env);
    expect(fourWords.code).toBe(2);
    expect(fourWords.stderr).toContain('three words (a legacy event) or one (an AMQP-subsystem message)');

    const rolebinding = await cli(['publish', 'rolebinding', uuid], env);
    expect(rolebinding.code).toBe(0);
    expect(rolebinding.stdout).toMatch(new RegExp(`^confirmed \\[rolebinding\\] "${uuid}" message_id=`));
    // Only the one that was confirmed arrived.
    const [message] = await collector.waitFor(1);
    expect(message.fields.routingKey).toBe('rolebinding');
    expect(message.content.toString()).toBe(`"${uuid}"`);
    expect(collector.messages).toHaveLength(1);
  });

  it('publish sends employee.rolebinding.create with AMQP__VOCABULARY=os2mo (rolebinding is an os2mo word)', async () => {
    const collector = await broker.collect(exchange, 'employee.rolebinding.create');
    const [uuid, objectUuid] = [randomUUID(), randomUUID()];
    const sent = await cli(['publish', 'employee.rolebinding.create', uuid, '--object-uuid', objectUuid], {
      AMQP__VOCABULARY: 'os2mo',
      AMQP__EXCHANGE: exchange,
    });
    expect(sent.code).toBe(0);
    expect(sent.stdout).toMatch(/^confirmed \[employee\.rolebinding\.create\] /);
    const [message] = await collector.waitFor(1);
    expect(JSON.parse(message.content.toString())).toMatchObject({ uuid, object_uuid: objectUuid });
  });

  it('tail prints a subsystem message and a legacy event side by side, each as [routing_key] body', async () => {
    const { child, lines } = await startTail(['--exchange', exchange]);
    const [changed, affected] = [randomUUID(), randomUUID()];
    expect((await cli(['publish', 'engagement', changed, '--exchange', exchange])).code).toBe(0);
    const legacy = ['publish', 'employee.engagement.create', affected, '--time', '2021-07-27T00:00:00+02:00'];
    expect((await cli([...legacy, '--exchange', exchange])).code).toBe(0);
    await until(() => lines.length === 2, 'two lines from tail');
    expect(lines).toEqual([
      `[engagement] "${changed}"`,
      `[employee.engagement.create] {"uuid": "${affected}", "time": "2021-07-27T00:00:00+02:00"}`,
    ]);
    child.kill('SIGINT');
  });

  it('tail shares an exchange declared non-durable (the seed’s script) with AMQP__EXCHANGE_DURABLE=false', async () => {
    await broker.channel.assertExchange(exchange, 'topic', { durable: false });
    const refused = await cli(['tail', '--exchange', exchange]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`Exchange "${exchange}" (vhost "/") exists non-durable`);
    expect(refused.stderr).toContain('set AMQP__EXCHANGE_DURABLE=false');

    const { child, lines } = await startTail(['--exchange', exchange], { AMQP__EXCHANGE_DURABLE: 'false' });
    broker.channel.publish(exchange, 'employee.it.create', Buffer.from('{}'));
    await until(() => lines.length === 1, 'the line from tail');
    child.kill('SIGINT');
  });

  it.each([
    [['publish', 'employee.kle.create', randomUUID()], 'objectType: received "kle"'],
    [['publish', 'employee.create', randomUUID()], 'three words (a legacy event) or one (an AMQP-subsystem message)'],
    [['publish', 'person', 'not-a-uuid'], 'uuid: received "not-a-uuid"'],
    [['publish', 'employee.it.create', 'not-a-uuid'], 'uuid: received "not-a-uuid"'],
    [['publish', 'employee.it.create', randomUUID(), '--time', 'tomorrow'], 'options.time: received "tomorrow"'],
    [['publish', 'employee.it.create'], 'needs a routing key and a UUID'],
    [['publish', 'employee.it.create', randomUUID(), '--when', 'now'], "Unknown option '--when'"],
    [['tail', '--binding', 'a..b'], 'is not a topic binding'],
    [['tail', 'extra'], 'Unexpected argument'],
    [['frobnicate'], 'unknown command "frobnicate"'],
  ])('refuses %j with a clear message and exit code 2', async (args, message) => {
    const result = await cli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });

  it('refuses bad configuration with exit code 2, naming the variable', async () => {
    const result = await cli(['publish', 'employee.it.create', randomUUID()], { AMQP__URL: 'http://nope' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('AMQP__URL: received "http://nope"');
  });

  it('says where it could not connect, without the password, and exits 1', async () => {
    const port = await closedPort();
    const env = { AMQP__URL: `amqp://admin:Top-Secret-42@127.0.0.1:${port}`, AMQP__CONNECT_TIMEOUT_MS: '1000' };
    for (const args of [['tail'], ['publish', 'employee.it.create', randomUUID()]]) {
      const result = await cli(args, env);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`amqp://admin:***@127.0.0.1:${port}`);
      expect(result.stderr).toContain('ECONNREFUSED');
      expect(result.stdout + result.stderr).not.toContain('Top-Secret-42');
    }
  });

  it('publish never spools: exit 0 means confirmed, and it leaves nothing in the working directory', async () => {
    const cwd = fs.mkdtempSync(join(tmpdir(), 'cli-cwd-'));
    try {
      const sent = await cli(['publish', 'employee.it.create', randomUUID(), '--exchange', exchange], {}, cwd);
      expect(sent.code).toBe(0);
      expect(sent.stdout).toMatch(/^confirmed \[employee\.it\.create\]/);
      const port = await closedPort();
      const env = { AMQP__URL: `amqp://127.0.0.1:${port}`, AMQP__CONNECT_TIMEOUT_MS: '500' };
      expect((await cli(['publish', 'employee.it.create', randomUUID()], env, cwd)).code).toBe(1);
      expect(fs.readdirSync(cwd)).toEqual([]);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('reads .env in the working directory (or --env-file), the environment winning, and says which broker', async () => {
    const cwd = fs.mkdtempSync(join(tmpdir(), 'cli-env-'));
    const other = uniqueName('cli-env-other');
    try {
      // The exchange only .env names: where the event must go.
      const named = uniqueName('cli-env-file');
      const collector = await broker.collect(named);
      fs.writeFileSync(join(cwd, '.env'), `# as ConfigModule reads it\nAMQP__EXCHANGE=${named}\n`);
      const sent = await cli(['publish', 'employee.it.create', randomUUID()], {}, cwd);
      expect(sent.code).toBe(0);
      await collector.waitFor(1);
      expect(sent.stderr).toContain(`RabbitMQ at ${BROKER_URL}`);
      expect(sent.stderr).toContain(`(settings from the environment and ${join(cwd, '.env')})`);
      // A variable of the process wins over the file.
      const overridden = await broker.collect(other);
      expect((await cli(['publish', 'employee.it.create', randomUUID()], { AMQP__EXCHANGE: other }, cwd)).code).toBe(0);
      await overridden.waitFor(1);
      expect(collector.messages).toHaveLength(1);
      // --env-file names another file; one that does not exist is a configuration error.
      fs.renameSync(join(cwd, '.env'), join(cwd, 'prod.env'));
      const viaOption = await cli(['publish', '--env-file', 'prod.env', 'employee.it.create', randomUUID()], {}, cwd);
      expect(viaOption.code).toBe(0);
      await collector.waitFor(2);
      // Node 20 itself reads --env-file wherever it stands, and stops (exit 9) when the file is missing.
      const missing = await cli(['publish', 'employee.it.create', randomUUID(), '--env-file=nope.env'], {}, cwd);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toContain('nope.env');
      expect(collector.messages).toHaveLength(2);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('prints help for the command and for each subcommand', async () => {
    expect((await cli(['--help'])).stdout).toContain('Usage: mo-amqp <command>');
    for (const command of ['tail', 'publish']) {
      const result = await cli([command, '--help']);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Usage: mo-amqp ${command}`);
      expect(result.stdout).toContain('AMQP-subsystem message');
    }
    expect((await cli(['publish', '--help'])).stdout).toContain('mo-amqp publish <object-type> <uuid>');
  });
});
