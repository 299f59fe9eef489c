// A spool directory left by a process that is gone, damaged by hand in every way
// the spool promises to survive: an unreadable owner.json, records whose checksum
// is right but which are no record, bytes that hold no record, entries that are
// no segment. The app sends every good record, in order, sets the damage aside in
// <spoolDir>/damaged/ byte for byte, says where, ends with an empty spool, and
// does not loop on it.
import { TestingModule } from '@nestjs/testing';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { MoAmqpHealthIndicator, MoAmqpModuleOptions, MoEventsService } from '../../lib';
import { DiskSpool, SPOOL_LEASE_MS } from '../../lib/spool/disk-spool';
import { bootApp, testSpoolDir } from '../support/app';
import { BROKER_URL, Collector, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';
import { framed } from '../support/spool-bytes';

const CASE_MS = 20_000;
/** Longer than the outbox's retry interval (2 s): a loop would have shown by then. */
const SETTLE_MS = 2_500;
const SEGMENT = '00000001.spool';
const ADOPTED = 'adopted-0123456789ab';

const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A segment cut into its records, by their headers. */
function records(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < data.length;) {
    const end = offset + 12 + data.readUInt32BE(offset + 4);
    out.push(data.subarray(offset, end));
    offset = end;
  }
  return out;
}

/** Backdates a directory (and its owner file, if any) past the lease. */
function backdate(dir: string): void {
  const old = new Date(Date.now() - SPOOL_LEASE_MS - 5_000);
  const owner = join(dir, 'owner.json');
  if (fs.existsSync(owner)) fs.utimesSync(owner, old, old);
  fs.utimesSync(dir, old, old);
}

describe('a damaged spool left by a process that is gone', () => {
  let broker: TestBroker;
  let exchange: string;
  let collector: Collector;
  let logger: CapturingLogger;
  let spoolDir: string;
  let app: TestingModule | undefined;
  let proxy: TcpProxy | undefined;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('adversarial');
    collector = await broker.collect(exchange);
    logger = new CapturingLogger();
    spoolDir = testSpoolDir();
  });

  afterEach(async () => {
    proxy?.resume();
    await app?.close();
    await proxy?.close();
    await broker.close();
    fs.rmSync(spoolDir, { recursive: true, force: true });
    app = undefined;
    proxy = undefined;
  });

  /**
   * A spool directory `<spoolDir>/<name>` as a process that died left it: the
   * records `left-<i>` for each i, written by a real DiskSpool (one segment),
   * and an owner.json naming a process that does not run. Resolves with the
   * directory, its segment, and the segment's records as bytes.
   */
  async function leftBehind(name: string, ids: number[]): Promise<{ dir: string; segment: string; frames: Buffer[] }> {
    const staging = fs.mkdtempSync(join(process.cwd(), 'staging-'));
    const spool = new DiskSpool(staging, 10_000_000);
    for (const i of ids) {
      await spool.append({
        exchange,
        routingKey: 'employee.engagement.update',
        content: Buffer.from(`{"uuid": "${uuid(i)}", "time": "2021-07-27"}`),
        properties: { persistent: true, contentType: 'application/json', messageId: `left-${i}` },
      });
    }
    await spool.close();
    const [own] = fs.readdirSync(staging);
    const dir = join(spoolDir, name);
    fs.renameSync(join(staging, own), dir);
    fs.rmSync(staging, { recursive: true, force: true });
    // Its holder is gone: a pid whose start time does not match (or that does not run).
    fs.writeFileSync(join(dir, 'owner.json'), JSON.stringify({ host: hostname(), pid: 999_999, start: '1' }));
    const segment = join(dir, SEGMENT);
    expect(fs.readdirSync(dir).sort()).toEqual([SEGMENT, 'owner.json']);
    return { dir, segment, frames: records(fs.readFileSync(segment)) };
  }

  /** Publishes `count` events through the app (after start-up): their message ids, in order. */
  async function publishLater(events: MoEventsService, count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++)
      ids.push((await events.publish('employee', 'engagement', 'update', uuid(100 + i))).messageId);
    return ids;
  }

  /** What the spool set aside in damaged/. */
  function damaged(): string[] {
    const dir = join(spoolDir, 'damaged');
    return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
  }

  /** The error lines saying something was set aside as damaged. */
  function setAsideLines(): string[] {
    return logger.lines.filter((l) => l.includes('set aside in') && l.includes(join(spoolDir, 'damaged')));
  }

  /**
   * Boots the app on the real broker and checks the end state every case shares:
   * exactly `expected` arrive, in order and once; the spool ends empty and the
   * left directory goes; nothing retries; 3 events published afterwards arrive
   * after them. (Events published while the spool is being sent are the subject
   * of 'start-up with a spool left behind'.) Resolves with the app's service.
   */
  async function sendsAllInOrder(
    expected: string[],
    more: Partial<MoAmqpModuleOptions> = {},
  ): Promise<MoEventsService> {
    app = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir, ...more }, { logger });
    const events = app.get(MoEventsService);
    await collector.waitFor(expected.length, 10_000);
    await until(() => events.spoolStats?.records === 0, 'the spool to be empty');
    const later = await publishLater(events, 3);
    const all = [...expected, ...later];
    await collector.waitFor(all.length, 10_000);
    await sleep(SETTLE_MS);
    expect(collector.messages.map((m) => m.properties.messageId)).toEqual(all);
    expect(events.spoolStats).toMatchObject({ records: 0, bytes: 0 });
    expect(events.counters).toMatchObject({ resent: expected.length, failed: 0 });
    // The left directory is gone: only damaged/ (and this process's own directory, if any) is left.
    expect(fs.readdirSync(spoolDir).filter((d) => d !== 'damaged' && !d.startsWith(`${process.pid}-`))).toEqual([]);
    expect(logger.text).not.toContain('retrying');
    expect(logger.text).not.toContain('Reading the spool failed');
    return events;
  }

  /** After the app is closed, only damaged/ is left in the spool directory. */
  async function closesClean(): Promise<void> {
    await app?.close();
    app = undefined;
    expect(fs.readdirSync(spoolDir).filter((d) => d !== 'damaged')).toEqual([]);
  }

  describe('an owner.json an adopter did not finish', () => {
    it.each([
      ['missing', undefined],
      ['empty', ''],
      ['null', 'null'],
      ['an array', '[]'],
      ['half written', '{"host":"'],
    ])(
      'is adopted once the lease has passed when owner.json is %s; its records are counted and reported before they are sent, then all sent',
      async (_what, content) => {
        const { dir, segment } = await leftBehind(ADOPTED, [1, 2, 3, 4, 5]);
        const bytes = fs.statSync(segment).size;
        const owner = join(dir, 'owner.json');
        if (content === undefined) fs.rmSync(owner);
        else fs.writeFileSync(owner, content);
        backdate(dir);

        proxy = await TcpProxy.start();
        app = await bootApp({ enabled: true, url: proxy.url, exchange, spoolDir }, { logger });
        proxy.pause(); // connected, but the broker answers nothing: the records wait on disk
        const events = app.get(MoEventsService);
        // (That they are counted the moment start-up resolves is checked below, on its own.)
        await until(() => events.spoolStats?.records === 5, 'the adopted records to be counted', 2_000);
        expect(events.spoolStats).toMatchObject({ records: 5, bytes, oldestSpooledAt: expect.any(Number) });
        expect(fs.existsSync(dir)).toBe(false); // renamed by the adopter
        const health = app.get(MoAmqpHealthIndicator);
        expect((await health.isHealthy()).amqp).toMatchObject({
          status: 'up',
          connected: true,
          spooled: 5,
          spoolBytes: bytes,
          oldestSpooledSecondsAgo: expect.any(Number),
        });
        await sleep(300);
        expect(collector.messages).toHaveLength(0); // not sent yet: still counted
        expect(events.spoolStats).toMatchObject({ records: 5 });

        proxy.resume();
        await collector.waitFor(5, 10_000);
        await sleep(SETTLE_MS);
        expect(collector.messages.map((m) => m.properties.messageId)).toEqual([1, 2, 3, 4, 5].map((i) => `left-${i}`));
        await until(() => events.spoolStats?.records === 0, 'the spool to be empty');
        expect((await health.isHealthy()).amqp).toMatchObject({ status: 'up', spooled: 0, spoolBytes: 0 });
        expect(fs.readdirSync(spoolDir)).toEqual([]); // the adopted directory is gone; nothing was damaged
        expect(logger.text).not.toContain('retrying');
        expect(logger.lines.filter((l) => l.startsWith('ERROR'))).toEqual([]);
      },
      CASE_MS,
    );

    it(
      'is left alone while the lease runs: it may be being written now',
      async () => {
        const { dir } = await leftBehind(ADOPTED, [1, 2]);
        fs.writeFileSync(join(dir, 'owner.json'), ''); // fresh: its mtime is now
        app = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir }, { logger });
        const events = app.get(MoEventsService);
        const later = await publishLater(events, 2);
        await collector.waitFor(2, 5_000);
        await sleep(1_000);
        expect(collector.messages.map((m) => m.properties.messageId)).toEqual(later);
        expect(events.spoolStats).toMatchObject({ records: 0 });
        expect(fs.readdirSync(dir).sort()).toEqual([SEGMENT, 'owner.json']);
      },
      CASE_MS,
    );
  });

  describe('start-up with a spool left behind', () => {
    it(
      'resolves only once what it adopted is counted: spoolStats, health and the start-up log say so at once',
      async () => {
        await leftBehind('999999-crashed', [1, 2, 3]);
        proxy = await TcpProxy.start();
        app = await bootApp({ enabled: true, url: proxy.url, exchange, spoolDir }, { logger });
        const atStart = app.get(MoEventsService).spoolStats;
        proxy.pause();
        const health = (await app.get(MoAmqpHealthIndicator).isHealthy()).amqp;
        expect({ records: atStart?.records, spooled: health.spooled }).toEqual({ records: 3, spooled: 3 });
        expect(logger.text).toContain('Sending 1 spool segment(s) left from before, in order');
      },
      CASE_MS,
    );

    it(
      'sends an event published as soon as start-up resolves after the records it adopted',
      async () => {
        await leftBehind('999999-crashed', [1, 2, 3]);
        app = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir }, { logger });
        const later = await publishLater(app.get(MoEventsService), 1);
        await collector.waitFor(4, 10_000);
        expect(collector.messages.map((m) => m.properties.messageId)).toEqual(['left-1', 'left-2', 'left-3', ...later]);
      },
      CASE_MS,
    );

    it(
      'spools every event published while it sends what was left: none is refused, all arrive in order',
      async () => {
        const left = Array.from({ length: 200 }, (_, i) => i + 1);
        await leftBehind('999999-crashed', left);
        app = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir }, { logger });
        const events = app.get(MoEventsService);
        await until(() => (events.spoolStats?.records ?? 0) > 0, 'the adopted records to be counted', 2_000);
        const outcomes: string[] = [];
        const later: string[] = [];
        for (let i = 0; i < 30; i++) {
          await events.publish('employee', 'engagement', 'update', uuid(1_000 + i)).then(
            (r) => {
              outcomes.push(r.status);
              later.push(r.messageId);
            },
            (err: Error) => outcomes.push(`${err.name}: ${err.message}`),
          );
        }
        expect(outcomes.filter((o) => o !== 'spooled' && o !== 'confirmed')).toEqual([]);
        await collector.waitFor(230, 10_000);
        expect(collector.messages.map((m) => m.properties.messageId)).toEqual([
          ...left.map((i) => `left-${i}`),
          ...later,
        ]);
      },
      CASE_MS,
    );
  });

  describe('a record whose checksum is right but which is no record', () => {
    it.each([
      ['not JSON', ['not json at all', '{"e":"x",'], 'the checksum is right but the record is not JSON'],
      [
        'JSON without the fields',
        ['null', '[]', '{}', '{"e":"x","k":"a.b.c","p":{},"t":1}', '{"e":"x","k":"a.b.c","p":{},"b":"!!","t":1}'],
        'the checksum is right but the record lacks its exchange, routing key, properties, body or time',
      ],
      [
        'properties amqplib cannot encode',
        [
          '{"e":"x","k":"a.b.c","p":{"deliveryMode":"x"},"b":"","t":1}',
          '{"e":"x","k":"a.b.c","p":{"priority":300},"b":"","t":1}',
          '{"e":"x","k":"a.b.c","p":{"messageId":7},"b":"","t":1}',
          '{"e":"x","k":"a.b.c","p":{"headers":[1]},"b":"","t":1}',
          '{"e":"x","k":"a.b.c","p":{"timestamp":"now"},"b":"","t":1}',
          '{"e":"x","k":"a.b.c","p":null,"b":"","t":1}',
        ],
        'the checksum is right but the record lacks its exchange, routing key, properties, body or time',
      ],
    ])(
      '(%s) is set aside in damaged/, said at error level with its path, and every other record is sent in order',
      async (_what, payloads, reason) => {
        const { dir, segment, frames } = await leftBehind('999999-crashed', [1, 2, 3, 4]);
        const bad = payloads.map((p) => framed(p.replace('"e":"x"', `"e":${JSON.stringify(exchange)}`)));
        const planted = Buffer.concat(bad);
        fs.writeFileSync(segment, Buffer.concat([frames[0], frames[1], planted, frames[2], frames[3]]));

        await sendsAllInOrder(['left-1', 'left-2', 'left-3', 'left-4']);
        expect(fs.existsSync(dir)).toBe(false);
        const [aside, ...more] = damaged();
        expect(more).toEqual([]);
        expect(fs.readFileSync(join(spoolDir, 'damaged', aside)).equals(planted)).toBe(true);
        const lines = setAsideLines();
        expect(lines).toHaveLength(bad.length);
        let offset = frames[0].length + frames[1].length;
        for (const [n, line] of lines.entries()) {
          expect(line).toMatch(
            new RegExp(
              `^ERROR Spool record at ${escape(spoolDir)}/adopted-[0-9a-f]{12}/${SEGMENT}, byte ${offset} ` +
                `\\(${bad[n].length} bytes\\), is damaged \\(${escape(reason)}\\): ` +
                `set aside in ${escape(join(spoolDir, 'damaged', aside))}; the records around it are sent`,
            ),
          );
          offset += bad[n].length;
        }
        await closesClean();
      },
      CASE_MS,
    );

    // Fields amqplib encodes as a short string (at most 255 bytes). The checks above
    // let these through; the publish then never settles, or the exchange cannot be declared.
    it.each([
      ['a routing key longer than 255 bytes', (e: string) => ({ e, k: 'k'.repeat(300), p: {} })],
      ['a type property longer than 255 bytes', (e: string) => ({ e, k: 'a.b.c', p: { type: 't'.repeat(300) } })],
      ['a message id longer than 255 bytes', (e: string) => ({ e, k: 'a.b.c', p: { messageId: 'm'.repeat(300) } })],
      ['an exchange name longer than 255 bytes', () => ({ e: 'x'.repeat(300), k: 'a.b.c', p: {} })],
      // Passes the check when read; amqplib refuses it only when it encodes it, after it has taken its
      // confirm callback: every later confirm must still reach its own message.
      [
        'a header value amqplib cannot encode',
        (e: string) => ({ e, k: 'employee.it.create', p: { headers: { h: { '!': 'decimal', value: 1 } } } }),
      ],
    ])(
      '(properties amqplib cannot encode: %s) is set aside in damaged/, and every other record is sent, once',
      async (_what, fields) => {
        const { segment, frames } = await leftBehind('999999-crashed', [1, 2, 3, 4]);
        const planted = framed(JSON.stringify({ ...fields(exchange), b: '', t: 1 }));
        fs.writeFileSync(segment, Buffer.concat([frames[0], frames[1], planted, frames[2], frames[3]]));

        // A short publish timeout, so a publish that never settles shows within the case's bound.
        await sendsAllInOrder(['left-1', 'left-2', 'left-3', 'left-4'], { publishTimeoutMs: 1_500 });
        const [aside, ...others] = damaged();
        expect(others).toEqual([]);
        expect(fs.readFileSync(join(spoolDir, 'damaged', aside)).equals(planted)).toBe(true);
        expect(setAsideLines()).toEqual([
          expect.stringMatching(new RegExp(`^ERROR .*set aside in ${escape(join(spoolDir, 'damaged', aside))}`)),
        ]);
        await closesClean();
      },
      CASE_MS,
    );
  });

  it(
    'sets aside bytes that hold no record between two records, and sends the records around them',
    async () => {
      const { segment, frames } = await leftBehind('999999-crashed', [1, 2, 3, 4]);
      const garbage = Buffer.from('\x00\x00garbage where a record was \xff\xfe'.repeat(8), 'latin1');
      fs.writeFileSync(segment, Buffer.concat([frames[0], frames[1], garbage, frames[2], frames[3]]));

      await sendsAllInOrder(['left-1', 'left-2', 'left-3', 'left-4']);
      const [aside, ...more] = damaged();
      expect(more).toEqual([]);
      expect(fs.readFileSync(join(spoolDir, 'damaged', aside)).equals(garbage)).toBe(true);
      expect(setAsideLines()).toEqual([
        expect.stringMatching(
          new RegExp(
            `^ERROR Spool record at ${escape(spoolDir)}/adopted-[0-9a-f]{12}/${SEGMENT}, ` +
              `byte ${frames[0].length + frames[1].length} \\(${garbage.length} bytes\\), ` +
              `is damaged \\(no record starts here\\): set aside in ${escape(join(spoolDir, 'damaged', aside))}`,
          ),
        ),
      ]);
      await closesClean();
    },
    CASE_MS,
  );

  it(
    'sets aside a record torn at the end of a segment (the one record destroyed), and sends the ones before it',
    async () => {
      const { segment, frames } = await leftBehind('999999-crashed', [1, 2, 3]);
      const torn = frames[2].subarray(0, frames[2].length - 7);
      fs.writeFileSync(segment, Buffer.concat([frames[0], frames[1], torn]));

      await sendsAllInOrder(['left-1', 'left-2']);
      const [aside, ...more] = damaged();
      expect(more).toEqual([]);
      expect(fs.readFileSync(join(spoolDir, 'damaged', aside)).equals(torn)).toBe(true);
      expect(setAsideLines()).toEqual([
        expect.stringMatching(/^ERROR .*is damaged \(truncated record \(\d+ of \d+ bytes\)\)/),
      ]);
      await closesClean();
    },
    CASE_MS,
  );

  it.each([
    ['a directory named like a segment', '00000007.spool', 'not a file'],
    ['a stray file named *.spool', 'notes.spool', 'not named as a segment'],
  ])(
    'moves %s to damaged/ as it was, says so, and sends the segment beside it',
    async (what, name, why) => {
      const { dir } = await leftBehind('999999-crashed', [1, 2, 3]);
      const entry = join(dir, name);
      if (what.startsWith('a directory')) {
        fs.mkdirSync(entry);
        fs.writeFileSync(join(entry, 'inside'), 'what the directory held');
      } else {
        fs.writeFileSync(entry, 'notes someone left\n');
      }

      await sendsAllInOrder(['left-1', 'left-2', 'left-3']);
      const [aside, ...more] = damaged();
      expect(more).toEqual([]);
      expect(aside).toMatch(new RegExp(`^\\d+-[0-9a-f]{8}-${escape(name)}$`));
      const target = join(spoolDir, 'damaged', aside);
      if (what.startsWith('a directory')) {
        expect(fs.statSync(target).isDirectory()).toBe(true);
        expect(fs.readdirSync(target)).toEqual(['inside']);
        expect(fs.readFileSync(join(target, 'inside'), 'utf8')).toBe('what the directory held');
      } else {
        expect(fs.readFileSync(target, 'utf8')).toBe('notes someone left\n');
      }
      expect(setAsideLines()).toEqual([
        expect.stringMatching(
          new RegExp(
            `^ERROR Spool entry ${escape(spoolDir)}/adopted-[0-9a-f]{12}/${escape(name)} is ${why}: ` +
              `set aside in ${escape(target)}; the segments beside it are sent`,
          ),
        ),
      ]);
      await closesClean();
    },
    CASE_MS,
  );

  it(
    'survives all of it at once: an empty owner.json, a bad record, garbage, a segment-named directory and a stray file',
    async () => {
      const { dir, segment, frames } = await leftBehind(ADOPTED, [1, 2, 3, 4, 5]);
      const notJson = framed('not json');
      const garbage = Buffer.from('no magic here, only noise');
      fs.writeFileSync(
        segment,
        Buffer.concat([frames[0], notJson, frames[1], frames[2], garbage, frames[3], frames[4]]),
      );
      fs.mkdirSync(join(dir, '00000000.spool'));
      fs.writeFileSync(join(dir, 'notes.spool'), 'hello');
      fs.writeFileSync(join(dir, 'owner.json'), '');
      backdate(dir);

      await sendsAllInOrder([1, 2, 3, 4, 5].map((i) => `left-${i}`));
      const aside = damaged();
      expect(aside.map((f) => f.replace(/^\d+-[0-9a-f]{8}-/, '')).sort()).toEqual([
        '00000000.spool',
        SEGMENT,
        'notes.spool',
      ]);
      const bytes = aside.find((f) => f.endsWith(SEGMENT)) as string;
      expect(fs.readFileSync(join(spoolDir, 'damaged', bytes)).equals(Buffer.concat([notJson, garbage]))).toBe(true);
      expect(setAsideLines()).toHaveLength(4);
      expect(setAsideLines().every((l) => l.startsWith('ERROR '))).toBe(true);
      await closesClean();
    },
    CASE_MS,
  );
});
