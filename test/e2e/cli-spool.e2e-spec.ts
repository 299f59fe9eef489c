// `mo-amqp spool status|resend` through the built command: what a spool directory
// holds, read without touching it, and the records the app set aside in refused/
// sent once the cause is fixed, each file deleted only after all its records are
// confirmed, a record refused again kept, and a resend killed mid-way losing nothing.
import { TestingModule } from '@nestjs/testing';
import { execFile, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DiskSpool } from '../../lib/spool/disk-spool';
import { writeOwner } from '../../lib/spool/spool-owner';
import { SpoolRecord, encodeRecord } from '../../lib/spool/spool-record';
import { bootApp, testSpoolDir } from '../support/app';
import { BROKER_URL, TestBroker, closedPort, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const run = promisify(execFile);
const HOUR = 3_600_000;

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, AMQP__URL: BROKER_URL, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** Every file under `dir` with its size and mtime: what a read-only command must leave as it was. */
function snapshot(dir: string): string[] {
  return fs.readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const st = fs.statSync(path);
    return [`${path} ${st.isDirectory() ? 'dir' : st.size} ${st.mtimeMs}`, ...(st.isDirectory() ? snapshot(path) : [])];
  });
}

describe('mo-amqp spool', () => {
  let broker: TestBroker;
  let exchange: string;
  let spoolDir: string;
  let app: TestingModule | undefined;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('spool-cli');
    broker.track(exchange);
    spoolDir = testSpoolDir();
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
    fs.rmSync(spoolDir, { recursive: true, force: true });
  });

  const record = (i: number, to = exchange, spooledAt = Date.now()): SpoolRecord => ({
    exchange: to,
    routingKey: 'org_unit.role.create',
    content: Buffer.from(`{"uuid": "${uuid(i)}", "time": "2021-07-27"}`),
    properties: { persistent: true, contentType: 'application/json', messageId: `left-${i}` },
    spooledAt,
  });

  /** A refused/ file as the spool writes one (its own encoder), older than resend's settling wait. */
  function refusedFile(name: string, records: SpoolRecord[] | string): string {
    const file = join(spoolDir, 'refused', name);
    fs.mkdirSync(join(spoolDir, 'refused'), { recursive: true });
    fs.writeFileSync(file, typeof records === 'string' ? records : Buffer.concat(records.map(encodeRecord)));
    const old = new Date(Date.now() - 10_000);
    fs.utimesSync(file, old, old);
    return file;
  }

  it('resend sends what the app set aside in refused/ once the cause is fixed, and deletes the file', async () => {
    // The app's own path to refused/: a spooled event whose exchange is now a fanout (406).
    const fanout = uniqueName('spool-cli-fanout');
    broker.track(fanout);
    await broker.channel.assertExchange(fanout, 'fanout', { durable: true });
    const left = new DiskSpool(spoolDir, 1_000_000);
    for (const [i, to] of [exchange, fanout].entries()) {
      const { spooledAt: _at, ...r } = record(i, to);
      await left.append(r);
    }
    await left.close();
    fs.renameSync(join(spoolDir, fs.readdirSync(spoolDir)[0]), join(spoolDir, '999999-crashed'));
    const collector = await broker.collect(exchange);
    const logger = new CapturingLogger();
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir }, { logger });
    await collector.waitFor(1, 10_000);
    await until(() => fs.existsSync(join(spoolDir, 'refused')), 'the refused file');
    await app.close();
    app = undefined;
    const [aside] = fs.readdirSync(join(spoolDir, 'refused'));

    const status = await cli(['spool', 'status', '--dir', spoolDir]);
    expect(status.code).toBe(0);
    expect(status.stderr).toBe(''); // no broker named: status reads the disk only
    expect(status.stdout).toMatch(
      / {2}refused\/: 1 file\(s\), 1 record\(s\), \d+ byte\(s\), the oldest spooled \d+ s ago/,
    );
    expect(status.stdout).toContain('send them with "mo-amqp spool resend" once the cause is fixed');

    // Not fixed yet: the record is refused again and stays; exit 1.
    const again = await cli(['spool', 'resend'], { AMQP__SPOOL_DIR: spoolDir });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(
      `1 record(s) of ${join(spoolDir, 'refused', aside)} stay: RabbitMQ refuses exchange "${fanout}"`,
    );
    expect(again.stderr).toContain('exists as a fanout exchange');
    expect(fs.readdirSync(join(spoolDir, 'refused'))).toEqual([aside]);

    // Fixed: the exchange is a topic exchange again, with a queue bound.
    await broker.channel.deleteExchange(fanout);
    const fixed = await broker.collect(fanout);
    const sent = await cli(['spool', 'resend', '--dir', spoolDir]);
    expect(sent.code).toBe(0);
    expect(sent.stdout).toContain(`sent 1 record(s) of ${join(spoolDir, 'refused', aside)}, and deleted it`);
    const [message] = await fixed.waitFor(1);
    expect(message.properties).toMatchObject({ messageId: 'left-1', contentType: 'application/json', deliveryMode: 2 });
    expect(message.fields.routingKey).toBe('org_unit.role.create');
    expect(message.content.toString()).toBe(`{"uuid": "${uuid(1)}", "time": "2021-07-27"}`);
    expect(fs.readdirSync(join(spoolDir, 'refused'))).toEqual([]);
    expect((await cli(['spool', 'resend', '--dir', spoolDir])).stdout).toContain('holds nothing to send');
  });

  it('resend keeps what is refused again in its file, sends the rest, and leaves a file that holds no records', async () => {
    const collector = await broker.collect(exchange);
    const fanout = uniqueName('spool-cli-still-fanout');
    broker.track(fanout);
    await broker.channel.assertExchange(fanout, 'fanout', { durable: true });
    const mixed = refusedFile('1-mixed.spool', [record(0), record(1, fanout), record(2), record(3, 'amq.bad')]);
    const broken = refusedFile('2-broken.spool', 'not a record at all');
    const result = await cli(['spool', 'resend', '--dir', spoolDir]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`sent 2 record(s) of ${mixed}; 2 stay in it`);
    expect(result.stderr).toContain(`1 record(s) of ${mixed} stay: exchange "amq.bad" is not an exchange name`);
    expect(result.stderr).toContain(
      `${broken} holds 19 byte(s) that are no record (no record starts here); left as it is`,
    );
    expect(result.stderr).not.toMatch(/^\s+at /m);
    const arrived = await collector.waitFor(2);
    expect(arrived.map((m) => m.properties.messageId)).toEqual(['left-0', 'left-2']);
    const kept = await new DiskSpool(spoolDir, 1_000_000).readSegment(mixed);
    expect(kept.map((r) => r.properties.messageId)).toEqual(['left-1', 'left-3']);
    expect(fs.readFileSync(broken, 'utf8')).toBe('not a record at all');
  });

  it('status tells each process directory, alive or abandoned, refused/ and damaged/, and changes nothing', async () => {
    // A live holder (this test process) with one segment of three records spooled an hour ago.
    const live = join(spoolDir, `${process.pid}-live`);
    fs.mkdirSync(live);
    await writeOwner(live);
    const hourAgo = Date.now() - HOUR;
    fs.writeFileSync(
      join(live, '00000001.spool'),
      Buffer.concat([0, 1, 2].map((i) => encodeRecord(record(i, exchange, hourAgo)))),
    );
    // A holder that is gone.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid as number;
    const gone = join(spoolDir, 'adopted-0123456789ab');
    fs.mkdirSync(gone);
    fs.writeFileSync(join(gone, 'owner.json'), JSON.stringify({ host: hostname(), pid: dead, start: null }));
    fs.writeFileSync(join(gone, '00000001.spool'), encodeRecord(record(5)));
    refusedFile('1-a.spool', [record(6), record(7)]);
    fs.mkdirSync(join(spoolDir, 'damaged'));
    fs.writeFileSync(join(spoolDir, 'damaged', 'x.spool'), '0123456789');
    const before = snapshot(spoolDir);

    const status = await cli(['spool', 'status', '--dir', spoolDir]);
    expect(status.code).toBe(0);
    const lines = status.stdout.split('\n');
    expect(lines[0]).toBe(`${spoolDir}:`);
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^ {2}${process.pid}-live/: 1 segment\\(s\\), 3 record\\(s\\), \\d+ byte\\(s\\), the oldest spooled 60 min ago .*; ` +
            `held by a live process \\(pid ${process.pid} on host `,
        ),
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^ {2}adopted-0123456789ab\/: 1 segment\(s\), 1 record\(s\), .*; abandoned \(pid \d+ on host .*the next process to start/,
      ),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}refused\/: 1 file\(s\), 2 record\(s\)/));
    expect(lines).toContain('  damaged/: 1 entry, 10 byte(s) (never sent; for a person to look at)');
    expect(lines).toContain('4 record(s) wait to be sent, 2 refused');
    expect(snapshot(spoolDir)).toEqual(before);
  });

  it('resend killed (SIGKILL) mid-way loses nothing: the files not done are sent by the next run', async () => {
    const collector = await broker.collect(exchange);
    const FILES = 30;
    const PER_FILE = 1_000;
    for (let f = 0; f < FILES; f++) {
      const records = Array.from({ length: PER_FILE }, (_, i) => record(f * PER_FILE + i));
      refusedFile(`${1000 + f}-part.spool`, records);
    }
    const child = spawn(process.execPath, [CLI, 'spool', 'resend', '--dir', spoolDir], {
      env: { ...process.env, AMQP__URL: BROKER_URL },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await until(() => collector.messages.length >= 1_500, 'the first records', 20_000);
    child.kill('SIGKILL');
    await exited;
    const leftFiles = fs.readdirSync(join(spoolDir, 'refused')).filter((f) => f.endsWith('.spool'));
    expect(leftFiles.length).toBeGreaterThan(0);
    expect(leftFiles.length).toBeLessThan(FILES);

    const rest = await cli(['spool', 'resend', '--dir', spoolDir]);
    expect(rest.code).toBe(0);
    const ids = () => new Set(collector.messages.map((m) => m.properties.messageId));
    await until(() => ids().size === FILES * PER_FILE, 'every record', 30_000);
    expect(fs.readdirSync(join(spoolDir, 'refused')).filter((f) => f.endsWith('.spool'))).toEqual([]);
  }, 90_000);

  it.each<[string[], Record<string, string>, string]>([
    [['spool'], {}, 'expected status or resend, got ""'],
    [['spool', 'flush'], {}, 'expected status or resend, got "flush"'],
    [['spool', 'status', 'extra'], {}, 'expected status or resend'],
    [['spool', 'status', '--dir', '/nonexistent/spool'], {}, '/nonexistent/spool is no spool directory'],
    [['spool', 'status'], { AMQP__SPOOL_DIR: 'off' }, 'AMQP__SPOOL_DIR is off; name the directory with --dir PATH'],
    [['spool', 'status', '--force'], {}, "Unknown option '--force'"],
  ])('refuses %j with exit code 2 and a clear message', async (args, env, said) => {
    const result = await cli(args, env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(said);
  });

  it('prints its help; resend says where it could not connect without the password, exit 1', async () => {
    const help = await cli(['spool', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: mo-amqp spool <status|resend> [--dir PATH]');
    refusedFile('1-a.spool', [record(1)]);
    const port = await closedPort();
    const env = { AMQP__URL: `amqp://admin:Top-Secret-42@127.0.0.1:${port}`, AMQP__CONNECT_TIMEOUT_MS: '1000' };
    const result = await cli(['spool', 'resend', '--dir', spoolDir], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`amqp://admin:***@127.0.0.1:${port}`);
    expect(result.stdout + result.stderr).not.toContain('Top-Secret-42');
    expect(fs.readdirSync(join(spoolDir, 'refused'))).toEqual(['1-a.spool']);
  });
});
