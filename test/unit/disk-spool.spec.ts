import * as fs from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskSpool, SPOOL_LEASE_MS, SpoolFullError } from '../../lib/spool/disk-spool';

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

async function readAll(spool: DiskSpool, problems: string[] = []) {
  const out = [];
  for (const file of await spool.takeSegments()) {
    out.push(...(await spool.readSegment(file, (f, offset, reason) => problems.push(`${offset}: ${reason}`))));
  }
  return out;
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

  it('reports a damaged record and still reads the ones around it', async () => {
    const spool = new DiskSpool(dir, 1_000_000);
    for (const i of [0, 1, 2]) await spool.append(record(i));
    const [file] = await spool.takeSegments();
    const data = fs.readFileSync(file);
    const second = data.indexOf('MOS1', 4);
    data[second + 20] ^= 0xff; // flip a byte inside the second record's payload
    fs.writeFileSync(file, data);
    const problems: string[] = [];
    const records = await spool.readSegment(file, (_f, offset, reason) => problems.push(`${offset}: ${reason}`));
    expect(records.map((r) => r.properties.messageId)).toEqual(['m-0', 'm-2']);
    expect(problems).toEqual([`${second}: checksum mismatch`]);
  });

  it('reports a torn write at the end and garbage in between', async () => {
    const spool = new DiskSpool(dir, 1_000_000);
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
    const problems: string[] = [];
    const records = await spool.readSegment(file, (_f, _offset, reason) => problems.push(reason));
    expect(records.map((r) => r.properties.messageId)).toEqual(['m-0', 'm-1']);
    expect(problems).toEqual(['no record starts here', expect.stringMatching(/^truncated record/)]);
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
    const [again] = await second.readSegment(files[0], () => undefined);
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
});

/** Field 22 of /proc/<pid>/stat: the process's start time, which a reused pid does not share. */
function startOf(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}
