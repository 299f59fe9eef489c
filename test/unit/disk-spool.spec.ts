import * as fs from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskSpool, SPOOL_LEASE_MS, SpoolFullError } from '../../lib/spool/disk-spool';
import { touchOwner } from '../../lib/spool/spool-owner';
import { framed } from '../support/spool-bytes';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'spool-spec-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const record = (i: number) => ({
  exchange: 'os2mo',
  routingKey: 'employee.it.create',
  content: Buffer.from(`{"uuid": "${i}", "time": "2021-07-27"}`),
  properties: { persistent: true, messageId: `m-${i}`, headers: { 'x-n': i } },
});

async function readAll(spool: DiskSpool) {
  const out = [];
  for (const file of await spool.takeSegments()) out.push(...(await spool.readSegment(file)));
  return out;
}

/** What the spool set aside in damaged/, file by file. */
function damagedFiles(): string[] {
  const damaged = join(dir, 'damaged');
  return fs.existsSync(damaged) ? fs.readdirSync(damaged).sort() : [];
}

describe('DiskSpool', () => {
  it('keeps records, in order, byte for byte, and counts them', async () => {
    const spool = new DiskSpool(dir, 1_000_000);
    expect(spool.isEmpty()).toBe(true);
    await Promise.all([0, 1, 2].map((i) => spool.append(record(i))));
    expect(spool.isEmpty()).toBe(false);
    expect(spool.stats).toMatchObject({ records: 3, bytes: expect.any(Number), oldestSpooledAt: expect.any(Number) });
    const records = await readAll(spool);
    expect(records.map((r) => r.properties.messageId)).toEqual(['m-0', 'm-1', 'm-2']);
    expect(records[1].content.equals(record(1).content)).toBe(true);
    expect(records[2].properties).toEqual(record(2).properties);
    expect(records[0].routingKey).toBe('employee.it.create');
  });

  it('writes the appends of one turn together and resolves them only once they are on disk', async () => {
    const spool = new DiskSpool(dir, 1_000_000);
    const writes = jest.spyOn(fs.promises, 'open');
    const appended = Array.from({ length: 100 }, (_, i) => spool.append(record(i)));
    await Promise.all(appended);
    expect(writes).toHaveBeenCalledTimes(1); // one segment file opened, one batch written
    writes.mockRestore();
    const [file] = await spool.takeSegments();
    expect(fs.statSync(file).size).toBe(spool.stats.bytes);
  });

  it('sets a damaged record aside in damaged/, reports it, and still reads the ones around it', async () => {
    const problems: string[] = [];
    const spool = new DiskSpool(dir, 1_000_000, (m) => problems.push(m));
    for (const i of [0, 1, 2]) await spool.append(record(i));
    const [file] = await spool.takeSegments();
    const data = fs.readFileSync(file);
    const second = data.indexOf('MOS1', 4);
    data[second + 20] ^= 0xff; // flip a byte inside the second record's payload
    fs.writeFileSync(file, data);
    const third = data.indexOf('MOS1', second + 4);
    const records = await spool.readSegment(file);
    expect(records.map((r) => r.properties.messageId)).toEqual(['m-0', 'm-2']);
    const [aside] = damagedFiles();
    expect(problems).toEqual([
      `Spool record at ${file}, byte ${second} (${third - second} bytes), is damaged (checksum mismatch): ` +
        `set aside in ${join(dir, 'damaged', aside)}; the records around it are sent`,
    ]);
    // The damaged bytes are kept as they were; the segment now holds the good records only.
    expect(fs.readFileSync(join(dir, 'damaged', aside)).equals(data.subarray(second, third))).toBe(true);
    expect((await spool.readSegment(file)).map((r) => r.properties.messageId)).toEqual(['m-0', 'm-2']);
    expect(problems).toHaveLength(1);
    expect(spool.stats.records).toBe(2);
  });

  it('reports a torn write at the end and garbage in between', async () => {
    const problems: string[] = [];
    const spool = new DiskSpool(dir, 1_000_000, (m) =>
      problems.push(m.replace(/^.*is damaged \((.*)\): set aside.*$/, '$1')),
    );
    for (const i of [0, 1, 2]) await spool.append(record(i));
    const [file] = await spool.takeSegments();
    const data = fs.readFileSync(file);
    const third = data.indexOf('MOS1', data.indexOf('MOS1', 4) + 4);
    // Garbage before the second record, and the third cut short.
    const damaged = Buffer.concat([
      data.subarray(0, data.indexOf('MOS1', 4)),
      Buffer.from('garbage!'),
      data.subarray(data.indexOf('MOS1', 4), third + 30),
    ]);
    fs.writeFileSync(file, damaged);
    const records = await spool.readSegment(file);
    expect(records.map((r) => r.properties.messageId)).toEqual(['m-0', 'm-1']);
    expect(problems).toEqual(['no record starts here', expect.stringMatching(/^truncated record/)]);
  });

  it('takes an append made while it hands out the segments: into a new segment, not the one being closed', async () => {
    const spool = new DiskSpool(dir, 1_000_000);
    await spool.append(record(0));
    const taking = spool.takeSegments();
    const appended = spool.append(record(1)); // no await in between: the old segment is being closed
    await expect(appended).resolves.toBeUndefined();
    const first = await taking;
    expect(first).toHaveLength(1);
    expect((await spool.readSegment(first[0])).map((r) => r.properties.messageId)).toEqual(['m-0']);
    await spool.remove(first[0]);
    expect((await readAll(spool)).map((r) => r.properties.messageId)).toEqual(['m-1']);
  });

  it('loses nothing when appends and the sending of segments run side by side', async () => {
    const spool = new DiskSpool(dir, 100_000_000);
    const read: string[] = [];
    let appending = true;
    const sender = (async () => {
      while (appending || !spool.isEmpty()) {
        for (const file of await spool.takeSegments()) {
          read.push(...(await spool.readSegment(file)).map((r) => String(r.properties.messageId)));
          await spool.remove(file);
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (let i = 0; i < 2_000; i++) {
      const pending = spool.append(record(i));
      if (i % 7 === 0) await pending;
    }
    await spool.append(record(2_000));
    appending = false;
    await sender;
    expect(read).toEqual(Array.from({ length: 2_001 }, (_, i) => `m-${i}`));
  });

  it('keeps an event appended while it closes: its directory is not removed under it', async () => {
    const spool = new DiskSpool(dir, 1_000_000);
    await spool.append(record(1));
    const [sent] = await spool.takeSegments();
    await spool.remove(sent); // its directory now holds only owner.json
    // An event spooled during shutdown, just after close() looked and saw nothing to keep.
    const readdir = fs.promises.readdir;
    let appended: Promise<void> | undefined;
    const spy = jest.spyOn(fs.promises, 'readdir').mockImplementation((async (...args: Parameters<typeof readdir>) => {
      const entries = await (readdir as (...a: unknown[]) => Promise<unknown>)(...args);
      appended ??= spool.append(record(2));
      await appended;
      return entries;
    }) as unknown as typeof readdir);
    try {
      await spool.close();
    } finally {
      spy.mockRestore();
    }
    await appended;
    await spool.close();
    expect(fs.existsSync(join(dir, 'damaged'))).toBe(false);
    const next = new DiskSpool(dir, 1_000_000);
    expect((await readAll(next)).map((r) => r.properties.messageId)).toEqual(['m-2']);
  });

  it('leaves alone directories that are no spool’s (lost+found, an operator’s files), however old', async () => {
    for (const name of ['lost+found', 'backups', '12345']) {
      fs.mkdirSync(join(dir, name));
      fs.writeFileSync(join(dir, name, 'db.dump'), 'precious');
      const old = new Date(Date.now() - SPOOL_LEASE_MS - 60_000);
      fs.utimesSync(join(dir, name), old, old);
    }
    const spool = new DiskSpool(dir, 1_000_000);
    expect(await spool.recover()).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(['12345', 'backups', 'lost+found']);
    for (const name of ['lost+found', 'backups', '12345']) {
      expect(fs.readFileSync(join(dir, name, 'db.dump'), 'utf8')).toBe('precious');
    }
  });

  it('refuses an append that would pass the limit, writing nothing', async () => {
    const spool = new DiskSpool(dir, 200);
    await spool.append(record(0));
    const before = spool.stats.bytes;
    await expect(spool.append(record(1))).rejects.toBeInstanceOf(SpoolFullError);
    expect(spool.stats.bytes).toBe(before);
  });

  it('adopts what a process that is gone left behind, not what a live one holds', async () => {
    const first = new DiskSpool(dir, 1_000_000);
    await first.append(record(0));
    await first.close();
    const [own] = fs.readdirSync(dir);
    fs.renameSync(join(dir, own), join(dir, '999999-dead')); // a pid that does not run
    fs.mkdirSync(join(dir, `${process.ppid}-alive`)); // the parent process is alive
    fs.writeFileSync(join(dir, `${process.ppid}-alive`, '00000001.spool'), 'not ours');

    const second = new DiskSpool(dir, 1_000_000);
    expect(await second.recover()).toBe(1);
    const files = await second.takeSegments();
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/adopted-[0-9a-f]{12}/);
    const [again] = await second.readSegment(files[0]);
    expect(again.properties.messageId).toBe('m-0');
    await second.remove(files[0]);
    expect(second.isEmpty()).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual([`${process.ppid}-alive`]);
  });

  it('leaves its directory behind when closed only while it still holds records', async () => {
    const spool = new DiskSpool(dir, 1_000_000);
    await spool.append(record(1));
    const [file] = await spool.takeSegments();
    await spool.append(record(2)); // a second segment, still to send
    await spool.remove(file);
    await spool.close();
    expect(fs.readdirSync(dir)).toHaveLength(1);
    const [last] = await spool.takeSegments();
    await spool.remove(last);
    await spool.close();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  /** A spool directory as another holder would have left it: one record, and `owner.json`. */
  async function leftBy(name: string, owner: object, ownerAgeMs = 0): Promise<void> {
    const other = new DiskSpool(join(dir, 'tmp'), 1_000_000);
    await other.append(record(7));
    await other.close();
    const [own] = fs.readdirSync(join(dir, 'tmp'));
    fs.renameSync(join(dir, 'tmp', own), join(dir, name));
    fs.rmSync(join(dir, 'tmp'), { recursive: true });
    const file = join(dir, name, 'owner.json');
    fs.writeFileSync(file, JSON.stringify(owner));
    const then = new Date(Date.now() - ownerAgeMs);
    fs.utimesSync(file, then, then);
  }

  it('adopts a directory whose pid is ours but from an earlier process (a restarted container)', async () => {
    await leftBy('1-earlier', { host: hostname(), pid: process.pid, start: '1' });
    const spool = new DiskSpool(dir, 1_000_000);
    expect(await spool.recover()).toBe(1);
  });

  it('leaves alone the directory of a live process on this host, and of a spool open in this process', async () => {
    await leftBy('parent', { host: hostname(), pid: process.ppid, start: startOf(process.ppid) });
    const open = new DiskSpool(dir, 1_000_000);
    await open.append(record(1)); // its own directory, held while it is open
    const second = new DiskSpool(dir, 1_000_000);
    expect(await second.recover()).toBe(0);
    await open.close(); // closed: now the second one may send what it left
    expect(await second.recover()).toBe(1);
  });

  it("adopts another host's directory only once its owner file is older than the lease", async () => {
    await leftBy('fresh', { host: 'elsewhere', pid: 1, start: null });
    await leftBy('stale', { host: 'elsewhere', pid: 1, start: null }, SPOOL_LEASE_MS + 1_000);
    const spool = new DiskSpool(dir, 1_000_000);
    const files = await spool.takeSegments();
    expect(files).toHaveLength(1);
    expect(fs.existsSync(join(dir, 'fresh'))).toBe(true);
    expect(fs.existsSync(join(dir, 'stale'))).toBe(false);
    // The adopted directory is now held by this process: a second spool here leaves it alone.
    const owner = JSON.parse(fs.readFileSync(join(files[0], '..', 'owner.json'), 'utf8'));
    expect(owner).toEqual({ host: hostname(), pid: process.pid, start: startOf(process.pid) });
    expect(await new DiskSpool(dir, 1_000_000).recover()).toBe(0);
  });

  /** An adopting process that died while writing owner.json leaves it missing, empty or half written. */
  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['null', 'null'],
    ['an array', '[]'],
    ['half written', '{"host":"'],
  ])(
    'adopts a directory whose owner file is %s once the lease has passed, counting its records',
    async (_what, content) => {
      await leftBy('adopted-0123456789ab', {});
      const owner = join(dir, 'adopted-0123456789ab', 'owner.json');
      if (content === undefined) fs.rmSync(owner);
      else fs.writeFileSync(owner, content);
      const old = new Date(Date.now() - SPOOL_LEASE_MS - 1_000);
      if (content !== undefined) fs.utimesSync(owner, old, old);
      fs.utimesSync(join(dir, 'adopted-0123456789ab'), old, old);
      const spool = new DiskSpool(dir, 1_000_000);
      expect(await spool.recover()).toBe(1);
      // Counted at adoption, before a record is read: health and spoolStats see them at once.
      expect(spool.stats.records).toBe(1);
      expect((await readAll(spool)).map((r) => r.properties.messageId)).toEqual(['m-7']);
    },
  );

  it('gives a directory without a readable owner file a lease first (it may be being written now)', async () => {
    await leftBy('adopted-0123456789ab', {});
    fs.writeFileSync(join(dir, 'adopted-0123456789ab', 'owner.json'), '');
    expect(await new DiskSpool(dir, 1_000_000).recover()).toBe(0);
  });

  it('sets aside a record whose checksum is right but which is no record, and sends the ones after it', async () => {
    const problems: string[] = [];
    const spool = new DiskSpool(dir, 1_000_000, (m) => problems.push(m));
    await spool.append(record(0));
    const [file] = await spool.takeSegments();
    const bad = [
      'not json',
      'null',
      '{"e":"os2mo","k":"a.b.c","p":{},"b":"!!","t":1}',
      '{"e":"os2mo","k":"a.b.c","p":{"deliveryMode":"x"},"b":"","t":1}',
      '{"e":"os2mo","k":"a.b.c","p":{"messageId":7},"b":"","t":1}',
    ];
    fs.appendFileSync(file, Buffer.concat(bad.map(framed)));
    await spool.append(record(1));
    expect((await readAll(spool)).map((r) => r.properties.messageId)).toEqual(['m-0', 'm-1']);
    expect(problems).toHaveLength(bad.length);
    expect(problems[0]).toContain('the checksum is right but the record is not JSON');
    expect(problems[1]).toContain('the checksum is right but the record lacks its exchange');
    expect(damagedFiles()).toHaveLength(1);
  });

  it('moves a directory or a stray file named like a segment to damaged/, and reads the segments beside it', async () => {
    const problems: string[] = [];
    const first = new DiskSpool(dir, 1_000_000);
    await first.append(record(3));
    await first.close();
    const [left] = fs.readdirSync(dir);
    fs.mkdirSync(join(dir, left, '00000000.spool'));
    fs.writeFileSync(join(dir, left, 'notes.spool'), 'hello');
    fs.renameSync(join(dir, left), join(dir, '999999-gone'));
    const spool = new DiskSpool(dir, 1_000_000, (m) => problems.push(m));
    expect((await readAll(spool)).map((r) => r.properties.messageId)).toEqual(['m-3']);
    expect(
      damagedFiles()
        .map((f) => f.replace(/^\d+-[0-9a-f]{8}-/, ''))
        .sort(),
    ).toEqual(['00000000.spool', 'notes.spool']);
    expect(problems.join('\n')).toMatch(/00000000\.spool is not a file: set aside in .*damaged/);
  });

  it('fails, in a few steps, to create a directory where the file system refuses one (Node’s own mkdir -p spins there)', async () => {
    // Bounded by the steps, not the clock: never Node's recursive mkdir (which spins under /proc),
    // and each level of the path tried at most twice.
    const original = fs.promises.mkdir.bind(fs.promises);
    const recursive = (options: unknown) => (options as { recursive?: unknown } | undefined)?.recursive === true;
    const mkdir = jest.spyOn(fs.promises, 'mkdir').mockImplementation(async (path, options) => {
      // Refused here rather than let it spin: the test then fails on this, not on its timeout.
      if (recursive(options)) throw new Error(`mkdir ${String(path)} with ${JSON.stringify(options)}`);
      return original(path, options);
    });
    const made = () => mkdir.mock.calls.splice(0).map(([path, options]) => ({ path: String(path), options }));
    try {
      await expect(new DiskSpool('/proc/mo-amqp-nope/spool', 1_000_000).check()).rejects.toMatchObject({
        code: 'ENOENT',
      });
      expect(made()).toEqual([
        { path: '/proc/mo-amqp-nope/spool', options: undefined },
        { path: '/proc/mo-amqp-nope', options: undefined },
        { path: '/proc', options: undefined },
        { path: '/proc/mo-amqp-nope', options: undefined },
      ]);
      await expect(new DiskSpool(join(dir, 'file', 'spool'), 1_000_000).check()).resolves.toBeUndefined();
      expect(made().filter(({ options }) => recursive(options))).toEqual([]);
      fs.writeFileSync(join(dir, 'plain'), '');
      await expect(new DiskSpool(join(dir, 'plain', 'spool'), 1_000_000).check()).rejects.toThrow(
        /ENOTDIR|not a directory/,
      );
      const plain = made();
      expect(plain.filter(({ options }) => recursive(options))).toEqual([]);
      expect(plain.length).toBeLessThanOrEqual(2 * join(dir, 'plain', 'spool').split('/').length);
    } finally {
      mkdir.mockRestore();
    }
  });

  it('writes its owner file whole, and again when it went missing', async () => {
    const spool = new DiskSpool(dir, 1_000_000);
    await spool.append(record(1));
    const [own] = fs.readdirSync(dir);
    expect(fs.readdirSync(join(dir, own)).sort()).toEqual(['00000001.spool', 'owner.json']);
    fs.rmSync(join(dir, own, 'owner.json'));
    await touchOwner(join(dir, own));
    expect(JSON.parse(fs.readFileSync(join(dir, own, 'owner.json'), 'utf8'))).toMatchObject({ pid: process.pid });
    await spool.close();
  });
});

/** Field 22 of /proc/<pid>/stat: the process's start time, which a reused pid does not share. */
function startOf(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}
