// `mo-amqp dlq list|show|requeue|purge` against the real broker, through the
// built command (dist/cli/mo-amqp.js): dead-lettered messages read without being
// lost or reordered, put back where they came from and handled, hostile headers
// left where they are with a line saying why, and a requeue killed mid-way
// losing nothing.
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import type { ConsumeMessage, Options } from 'amqplib';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  MO_HEADER_ATTEMPT,
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MO_HEADER_REQUEUED,
  MO_HEADER_ROUTING_KEY,
  MoEventMessage,
  MoEventSubscribe,
  MoEventsService,
} from '../../lib';
import { queueArguments } from '../../lib/subscribing/subscriptions';
import { bootApp } from '../support/app';
import { BROKER_URL, Collector, TestBroker, closedPort, uniqueName } from '../support/broker';
import { until } from '../support/until';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const run = promisify(execFile);
const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const BODY = Buffer.from(`{"uuid": "${UUID}", "time": "2021-07-27T00:00:00+02:00"}`);

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, AMQP__URL: BROKER_URL, ...env },
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** The message ids in `queue`, in order, taking them (acknowledged). */
async function idsIn(broker: TestBroker, queue: string): Promise<string[]> {
  return (await broker.drain(queue)).map((m) => m.properties.messageId as string);
}

describe('mo-amqp dlq', () => {
  let broker: TestBroker;
  let exchange: string;
  let app: TestingModule | undefined;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('dlq-cli');
    broker.track(exchange);
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
  });

  /** A consumer queue name and its .dlq, both deleted afterwards; the .dlq declared (empty). */
  async function dlqFor(name: string): Promise<{ queue: string; dlq: string }> {
    const queue = uniqueName(name);
    broker.trackQueue(queue);
    broker.trackQueue(`${queue}.dlq`);
    await broker.channel.assertQueue(`${queue}.dlq`, { durable: true });
    return { queue, dlq: `${queue}.dlq` };
  }

  /** Puts a message into `dlq` by hand, as a dead-lettering would have, and waits until it is there. */
  async function deadLetter(
    dlq: string,
    messageId: string,
    headers: Record<string, unknown>,
    extra: Options.Publish = {},
  ) {
    broker.channel.sendToQueue(dlq, BODY, {
      persistent: true,
      contentType: 'application/json',
      messageId,
      headers,
      ...extra,
    });
  }

  const ours = (routingKey = 'employee.engagement.create', at = exchange) => ({
    [MO_HEADER_EXCHANGE]: at,
    [MO_HEADER_ROUTING_KEY]: routingKey,
    [MO_HEADER_REASON]: 'the handler failed 4 times; last error: Error: boom',
    [MO_HEADER_ATTEMPT]: 4,
    [MO_HEADER_QUEUE]: 'payroll',
  });

  it('a dead-lettered message goes back through requeue and is handled; --to-queue reaches its consumer alone', async () => {
    const failing = uniqueName('dlq-failing');
    const other = uniqueName('dlq-other');
    for (const q of [failing, other]) for (const suffix of ['', '.dlq']) broker.trackQueue(`${q}${suffix}`);
    let fail = true;
    const handled: { event: MoEventMessage; message: ConsumeMessage }[] = [];
    const others: string[] = [];
    @Injectable()
    class Consumers {
      @MoEventSubscribe({ queue: failing, objectType: 'engagement', retries: 1, retryDelayMs: 0 })
      async onEngagement(event: MoEventMessage, message: ConsumeMessage) {
        if (fail) throw new Error('downstream is down');
        handled.push({ event, message });
      }

      @MoEventSubscribe({ queue: other, objectType: 'engagement' })
      async onOther(event: MoEventMessage) {
        others.push(event.messageId as string);
      }
    }
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange }, { providers: [Consumers] });
    const events = app.get(MoEventsService);
    const first = await events.publish('employee', 'engagement', 'create', UUID, { time: '2021-07-27' });
    await until(async () => (await broker.depth(`${failing}.dlq`)) === 1, 'the dead-letter');

    const listed = await cli(['dlq', 'list', failing]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toBe(
      `"${failing}.dlq" holds 1 message(s):\n` +
        `#1 message_id=${first.messageId} uuid=${UUID} object_uuid=- [employee.engagement.create] from "${exchange}" attempt=2 ` +
        `queue=${failing} reason: the handler failed 2 times; last error: Error: downstream is down\n`,
    );
    const shown = await cli(['dlq', 'show', `${failing}.dlq`, first.messageId]);
    expect(shown.code).toBe(0);
    const json = JSON.parse(shown.stdout);
    expect(json).toMatchObject({
      index: 1,
      origin: { exchange, routingKey: 'employee.engagement.create', from: 'x-mo-amqp headers' },
      properties: { messageId: first.messageId, contentType: 'application/json', deliveryMode: 2 },
      body: { text: first.body },
    });
    expect(json.properties.headers[MO_HEADER_REASON]).toContain('downstream is down');
    expect(await broker.depth(`${failing}.dlq`)).toBe(1); // list and show took nothing

    fail = false;
    const requeued = await cli(['dlq', 'requeue', failing]);
    expect(requeued.code).toBe(0);
    expect(requeued.stdout).toBe(
      `requeued #1 message_id=${first.messageId} to [employee.engagement.create] on exchange "${exchange}"\n` +
        `requeued 1 message(s) from "${failing}.dlq"\n`,
    );
    await until(() => handled.length === 1, 'the requeued event handled');
    expect(handled[0].event).toMatchObject({ uuid: UUID, routingKey: 'employee.engagement.create' });
    expect(handled[0].event.messageId).toBe(first.messageId);
    const headers = handled[0].message.properties.headers ?? {};
    expect(headers[MO_HEADER_REQUEUED]).toBe(1);
    for (const gone of [MO_HEADER_REASON, MO_HEADER_ATTEMPT, MO_HEADER_QUEUE, MO_HEADER_EXCHANGE])
      expect(headers[gone]).toBeUndefined();
    expect(await broker.depth(`${failing}.dlq`)).toBe(0);
    // Through the exchange, every bound queue got it again: the other consumer too.
    await until(() => others.length === 2, 'the other consumer to get it again');
    expect(others).toEqual([first.messageId, first.messageId]);

    // --to-queue: only the consumer whose .dlq it was.
    fail = true;
    const second = await events.publish('org_unit', 'engagement', 'update', UUID, { time: '2021-07-27' });
    await until(async () => (await broker.depth(`${failing}.dlq`)) === 1, 'the second dead-letter');
    fail = false;
    const direct = await cli(['dlq', 'requeue', failing, '--to-queue']);
    expect(direct.code).toBe(0);
    expect(direct.stdout).toContain(`to queue "${failing}" as [org_unit.engagement.update]`);
    await until(() => handled.length === 2, 'the second event handled');
    expect(handled[1].event).toMatchObject({ routingKey: 'org_unit.engagement.update', messageId: second.messageId });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(others).toEqual([first.messageId, first.messageId, second.messageId]);
  });

  it('list and show read without taking: same order, same count, a missing message exit 2', async () => {
    const { queue, dlq } = await dlqFor('dlq-order');
    const ids = Array.from({ length: 5 }, (_, i) => `m-${i}`);
    for (const id of ids) await deadLetter(dlq, id, ours());
    await until(async () => (await broker.depth(dlq)) === 5, 'five dead-letters');
    const once = await cli(['dlq', 'list', queue]);
    const twice = await cli(['dlq', 'list', dlq, '--limit', '3']);
    expect(once.code).toBe(0);
    expect(
      once.stdout
        .split('\n')
        .slice(1, 6)
        .map((l) => /message_id=(\S+)/.exec(l)?.[1]),
    ).toEqual(ids);
    expect(once.stdout).toContain('attempt=4 queue=payroll reason: the handler failed 4 times');
    expect(twice.stdout.split('\n')[0]).toBe(`"${dlq}" holds 5 message(s); the first 3:`);
    expect((await cli(['dlq', 'show', queue, '3'])).stdout).toContain('"messageId": "m-2"');
    expect(JSON.parse((await cli(['dlq', 'show', queue, 'm-4'])).stdout).index).toBe(5);
    const missing = await cli(['dlq', 'show', queue, 'nope']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`"${dlq}" holds 5 message(s), and not a message with message_id "nope"`);
    expect(await idsIn(broker, dlq)).toEqual(ids);
  });

  it('requeues what dead-lettered from a quorum queue by RabbitMQ itself (x-death), and --limit bounds it', async () => {
    const queue = uniqueName('dlq-quorum');
    for (const q of [queue, `${queue}.dlq`]) broker.trackQueue(q);
    await broker.channel.assertExchange(exchange, 'topic', { durable: true });
    await broker.channel.assertQueue(`${queue}.dlq`, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await broker.channel.assertQueue(queue, { durable: true, arguments: queueArguments(queue, 'quorum') });
    await broker.channel.bindQueue(queue, exchange, 'employee.#');
    for (const id of ['q-0', 'q-1']) {
      broker.channel.publish(exchange, 'employee.it.create', BODY, { messageId: id, persistent: true });
      await broker.returnUntilDeadLettered(queue, `${queue}.dlq`);
    }
    await until(async () => (await broker.depth(`${queue}.dlq`)) === 2, 'both dead-lettered by the broker');
    const listed = await cli(['dlq', 'list', queue]);
    expect(listed.stdout).toContain(
      `#1 message_id=q-0 uuid=${UUID} object_uuid=- [employee.it.create] from "${exchange}" attempt=- queue=${queue}`,
    );
    expect(listed.stdout).toContain('reason: RabbitMQ: delivery_limit');

    const one = await cli(['dlq', 'requeue', queue, '--limit', '1']);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain('requeued 1 message(s)');
    await until(async () => (await broker.depth(queue)) === 1, 'the first back on its queue');
    const [back] = await broker.drain(queue);
    expect(back.properties.messageId).toBe('q-0');
    expect(back.fields).toMatchObject({ exchange, routingKey: 'employee.it.create' });
    // No x-death and no x-first-death-*: only the count (and the quorum queue's own x-delivery-count,
    // and on 4.3 x-acquired-count: the broker's, not carried over from the dead-letter queue).
    const { 'x-delivery-count': _count, 'x-acquired-count': _acquired, ...headers } = back.properties.headers ?? {};
    expect(headers).toEqual({ [MO_HEADER_REQUEUED]: 1 });
    expect(await idsIn(broker, `${queue}.dlq`)).toEqual(['q-1']);
  });

  it('leaves messages whose headers are hostile or say nowhere, one line each, and sends the rest as they were', async () => {
    const { queue, dlq } = await dlqFor('dlq-hostile');
    const collector = await broker.collect(exchange, 'employee.#');
    const gone = uniqueName('dlq-no-such-exchange');
    const cases: [string, Record<string, unknown>, string][] = [
      ['number-exchange', { ...ours(), [MO_HEADER_EXCHANGE]: 42 }, `header ${MO_HEADER_EXCHANGE} is 42, not text`],
      ['bad-name', { ...ours(), [MO_HEADER_EXCHANGE]: 'a b' }, 'is "a b", not an exchange name'],
      ['amq', { ...ours(), [MO_HEADER_EXCHANGE]: 'amq.topic' }, 'not starting with "amq."'],
      ['bytes-key', { ...ours(), [MO_HEADER_ROUTING_KEY]: Buffer.from('x') }, `header ${MO_HEADER_ROUTING_KEY} is`],
      ['only-key', { [MO_HEADER_ROUTING_KEY]: 'employee.it.create' }, `header ${MO_HEADER_EXCHANGE} is undefined`],
      ['nothing', {}, 'where it came from is unknown'],
      ['death-not-list', { 'x-death': 'yesterday' }, 'header x-death is "yesterday", not a list'],
      ['death-keys', { 'x-death': [{ exchange, 'routing-keys': 'k' }] }, 'x-death[0][\'routing-keys\'] is "k"'],
      ['no-exchange', ours('employee.it.create', gone), `exchange "${gone}" (from x-mo-amqp headers) does not exist`],
      ['unroutable', ours('org_unit.it.create'), 'no queue takes [org_unit.it.create]'],
    ];
    await deadLetter(
      dlq,
      'good-1',
      { ...ours(), custom: 'kept', [MO_HEADER_REQUEUED]: 2, [MO_HEADER_REASON]: 'bad\n\u001b[31mred' },
      {
        correlationId: 'c-1',
        type: 't',
        appId: 'os2mo',
        timestamp: 1_600_000_000,
        priority: 3,
      },
    );
    for (const [id, headers] of cases) await deadLetter(dlq, id, headers);
    await deadLetter(dlq, 'good-2', {
      'x-death': [{ queue, reason: 'delivery_limit', exchange, 'routing-keys': ['employee.it.update'], count: 1 }],
    });
    await until(async () => (await broker.depth(dlq)) === cases.length + 2, 'the dead-letters');

    const listed = await cli(['dlq', 'list', queue]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('queue=payroll requeued=2 reason: bad\\n\\u001b[31mred');
    expect(listed.stdout).not.toContain('\u001b');
    expect(listed.stdout).toContain(`#2 message_id=number-exchange uuid=${UUID} object_uuid=- origin unknown`);

    const result = await cli(['dlq', 'requeue', queue]);
    expect(result.code).toBe(0);
    expect(result.stderr).not.toMatch(/^\s+at /m);
    cases.forEach(([id, , said], i) => {
      const line = result.stderr.split('\n').find((l) => l.includes(`#${i + 2} message_id=${id} stays in "${dlq}": `));
      expect(line).toContain(said);
    });
    expect(result.stdout).toContain(`requeued 2 message(s) from "${dlq}"; ${cases.length} left there (said above)`);
    const arrived = await collector.waitFor(2);
    expect(arrived.map((m) => [m.properties.messageId, m.fields.routingKey])).toEqual([
      ['good-1', 'employee.engagement.create'],
      ['good-2', 'employee.it.update'],
    ]);
    expect(arrived[0].content).toEqual(BODY);
    expect(arrived[0].properties).toMatchObject({
      contentType: 'application/json',
      deliveryMode: 2,
      correlationId: 'c-1',
      type: 't',
      appId: 'os2mo',
      timestamp: 1_600_000_000,
      priority: 3,
      headers: { custom: 'kept', [MO_HEADER_REQUEUED]: 3 },
    });
    expect(Object.keys(arrived[0].properties.headers ?? {}).sort()).toEqual(['custom', MO_HEADER_REQUEUED]);
    expect(arrived[1].properties.headers).toEqual({ [MO_HEADER_REQUEUED]: 1 });
    // What was left is still there, in its order.
    expect(await idsIn(broker, dlq)).toEqual(cases.map(([id]) => id));
  });

  it("lists the body's uuid and object_uuid: OS2mo's own message (no message_id), hostile bodies only as markers", async () => {
    const { queue, dlq } = await dlqFor('dlq-bodies');
    const object = '8ecdb8d5-8d0a-4d51-9c4c-4b5e0a1f2a3b';
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    // [message_id, body, what the line shows of it]; OS2mo's first, as it sends them: no message_id.
    const cases: [string | undefined, Buffer, string][] = [
      [
        undefined,
        Buffer.from(
          `{"uuid": "${UUID.toUpperCase()}", "object_uuid": "${object}", "time": "2021-07-27T00:00:00+02:00"}`,
        ),
        `uuid=${UUID} object_uuid=${object}`,
      ],
      ['not-json', Buffer.from(`uuid=${UUID} object_uuid=${object}`), 'uuid=not-json object_uuid=not-json'],
      [
        'not-utf8',
        Buffer.concat([Buffer.from(`{"uuid": "${UUID}"`), Buffer.from([0xff]), Buffer.from('}')]),
        'uuid=not-json object_uuid=not-json',
      ],
      ['array', json([{ uuid: UUID }]), 'uuid=not-json object_uuid=not-json'],
      // OS2mo's AMQP-subsystem body: the UUID as a JSON string.
      ['change', json(UUID.toUpperCase()), `uuid=${UUID} object_uuid=-`],
      ['string', json('c390b9a2'), 'uuid=invalid object_uuid=-'],
      ['empty', Buffer.alloc(0), 'uuid=not-json object_uuid=not-json'],
      [
        'huge',
        json({ uuid: UUID, object_uuid: object, pad: 'x'.repeat(70_000) }),
        'uuid=too-large object_uuid=too-large',
      ],
      ['not-strings', Buffer.from('{"uuid": 42, "object_uuid": null}'), 'uuid=invalid object_uuid=invalid'],
      ['nested', json({ uuid: { uuid: UUID }, object_uuid: [object] }), 'uuid=invalid object_uuid=invalid'],
      ['not-uuids', json({ uuid: 'c390b9a2', object_uuid: `{${object}}` }), 'uuid=invalid object_uuid=invalid'],
      [
        'escapes',
        json({ uuid: `\u001b[2K\r${UUID}`, object_uuid: `${object}\n#9 message_id=spoofed uuid=${UUID}` }),
        'uuid=invalid object_uuid=invalid',
      ],
      ['proto', Buffer.from(`{"__proto__": {"uuid": "${UUID}"}, "constructor": "x"}`), 'uuid=- object_uuid=-'],
      ['none', json({ time: '2021-07-27' }), 'uuid=- object_uuid=-'],
      // A message_id posing as the fields after it, or reversing the line with a bidi override.
      [`x uuid=${object}\u202e`, json({ uuid: UUID }), `uuid=${UUID} object_uuid=-`],
    ];
    for (const [messageId, body] of cases) {
      broker.channel.sendToQueue(dlq, body, { persistent: true, ...(messageId && { messageId }), headers: ours() });
    }
    await until(async () => (await broker.depth(dlq)) === cases.length, 'the dead-letters');

    const listed = await cli(['dlq', 'list', queue]);
    expect(listed.code).toBe(0);
    const rest = `[employee.engagement.create] from "${exchange}" attempt=4 queue=payroll reason: the handler failed 4 times; last error: Error: boom`;
    const shownId = (id = '-') => (id.startsWith('x ') ? `x\\u0020uuid=${object}\\u202e` : id);
    expect(listed.stdout.split('\n')).toEqual([
      `"${dlq}" holds ${cases.length} message(s):`,
      ...cases.map(([id, , uuids], i) => `#${i + 1} message_id=${shownId(id)} ${uuids} ${rest}`),
      '',
    ]);
    expect(listed.stdout.replaceAll('\n', ' ')).not.toMatch(/[\p{Cc}\p{Cf}]/u);
    expect(await broker.depth(dlq)).toBe(cases.length); // listing took nothing
  });

  it('purges only with --yes; without it says how many would go and exits 2', async () => {
    const { queue, dlq } = await dlqFor('dlq-purge');
    for (const id of ['a', 'b', 'c']) await deadLetter(dlq, id, ours());
    await until(async () => (await broker.depth(dlq)) === 3, 'three dead-letters');
    const refused = await cli(['dlq', 'purge', queue]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`would delete the 3 message(s) in "${dlq}" for good; run again with --yes`);
    expect(await broker.depth(dlq)).toBe(3);
    const purged = await cli(['dlq', 'purge', dlq, '--yes']);
    expect(purged.code).toBe(0);
    expect(purged.stdout).toBe(`purged 3 message(s) from "${dlq}"\n`);
    expect(await broker.depth(dlq)).toBe(0);
  });

  it.each<[string[], string]>([
    [['dlq'], 'expected one of list, show, requeue, purge'],
    [['dlq', 'frob', 'q'], 'expected one of list, show, requeue, purge, got "frob"'],
    [['dlq', 'list'], 'list needs a queue'],
    [['dlq', 'list', 'a b'], '"a b" is not a queue name'],
    [['dlq', 'list', 'amq.q'], 'not starting with "amq."'],
    [['dlq', 'list', 'q', '--limit', '0'], '--limit "0" is not a whole number from 1 to 1000000'],
    [['dlq', 'list', 'q', '--limit', 'lots'], '--limit "lots"'],
    [['dlq', 'list', 'q', '--yes'], '--yes goes with purge only'],
    [['dlq', 'purge', 'q', '--to-queue'], '--to-queue goes with requeue only'],
    [['dlq', 'show', 'q'], 'show needs a queue and one index or message_id'],
    [['dlq', 'list', 'q', 'extra'], 'unexpected argument "extra"'],
    [['dlq', 'list', 'q', '--nope'], "Unknown option '--nope'"],
    [['dlq', 'list', 'test.dlq-cli.no-such-queue'], 'has no queue "test.dlq-cli.no-such-queue.dlq"'],
  ])('refuses %j with exit code 2 and a clear message', async (args, said) => {
    const result = await cli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(said);
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });

  it('prints its help; says where it could not connect without the password, exit 1', async () => {
    const help = await cli(['dlq', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: mo-amqp dlq <list|show|requeue|purge> <queue>');
    expect((await cli(['--help'])).stdout).toContain('dlq <list|show|requeue|purge> <queue>');
    const port = await closedPort();
    const env = { AMQP__URL: `amqp://admin:Top-Secret-42@127.0.0.1:${port}`, AMQP__CONNECT_TIMEOUT_MS: '1000' };
    for (const action of ['list', 'requeue']) {
      const result = await cli(['dlq', action, 'q'], env);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`amqp://admin:***@127.0.0.1:${port}`);
      expect(result.stdout + result.stderr).not.toContain('Top-Secret-42');
    }
  });

  describe('interrupted mid-requeue', () => {
    const COUNT = 3_000;

    /** COUNT dead-letters for `exchange`, and a collector of what comes back there. */
    async function manyDeadLetters(): Promise<{ queue: string; dlq: string; collector: Collector; ids: string[] }> {
      const { queue, dlq } = await dlqFor('dlq-kill');
      const collector = await broker.collect(exchange, 'employee.#');
      const ids = Array.from({ length: COUNT }, (_, i) => `k-${i}`);
      for (const id of ids) await deadLetter(dlq, id, ours());
      await until(async () => (await broker.depth(dlq)) === COUNT, 'the dead-letters', 20_000);
      return { queue, dlq, collector, ids };
    }

    /** Waits until `value` has not changed for half a second. */
    async function settled(value: () => Promise<number>): Promise<void> {
      let last = -1;
      for (let now = await value(); now !== last; now = await value()) {
        last = now;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }

    function start(args: string[]): { child: ChildProcess; exited: Promise<number | null> } {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, AMQP__URL: BROKER_URL } });
      child.stdout?.resume();
      child.stderr?.resume();
      return { child, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
    }

    it('killed (SIGKILL): nothing lost, at most one sent twice, and a second run sends the rest', async () => {
      const { queue, dlq, collector, ids } = await manyDeadLetters();
      const { child, exited } = start(['dlq', 'requeue', queue, '--limit', String(COUNT)]);
      await until(() => collector.messages.length >= 300, 'the first 300 back', 20_000);
      child.kill('SIGKILL');
      await exited;
      // The broker takes back what the dead process held unacknowledged; what it sent arrives.
      const total = async () => (await broker.depth(dlq)) + collector.messages.length;
      await until(async () => (await total()) >= COUNT, 'every message back or still in the dead-letter queue');
      await settled(total);
      const left = await broker.depth(dlq);
      expect(left).toBeGreaterThan(0); // it was killed mid-way
      expect(left + collector.messages.length).toBeLessThanOrEqual(COUNT + 1);

      const rest = await cli(['dlq', 'requeue', queue, '--limit', String(COUNT)]);
      expect(rest.code).toBe(0);
      expect(rest.stderr).not.toContain('stays in');
      expect(rest.stdout).toContain(`requeued ${left} message(s)`);
      const seen = () => collector.messages.map((m) => m.properties.messageId as string);
      await until(() => new Set(seen()).size === COUNT, 'every message back', 20_000);
      await settled(async () => collector.messages.length);
      expect(new Set(seen())).toEqual(new Set(ids));
      expect(seen().length).toBeLessThanOrEqual(COUNT + 1);
      expect(await broker.depth(dlq)).toBe(0);
    }, 90_000);

    it('stopped (SIGINT): finishes the message in hand, exits 130, none twice, the rest still there', async () => {
      const { queue, dlq, collector, ids } = await manyDeadLetters();
      const { child, exited } = start(['dlq', 'requeue', queue, '--limit', String(COUNT)]);
      let stdout = '';
      child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      await until(() => collector.messages.length >= 300, 'the first 300 back', 20_000);
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      const requeued = Number(/stopped: requeued (\d+) message\(s\)/.exec(stdout)?.[1]);
      expect(requeued).toBeLessThan(COUNT);
      const arrived = await collector.waitFor(requeued, 10_000);
      await settled(async () => collector.messages.length);
      const left = await idsIn(broker, dlq);
      expect(arrived.map((m) => m.properties.messageId)).toEqual(ids.slice(0, requeued));
      expect(left).toEqual(ids.slice(requeued));
    }, 90_000);
  });
});
