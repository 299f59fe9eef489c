import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { DAMAGED_DIR, REFUSED_DIR, SPOOL_LEASE_MS } from '../spool/disk-spool';
import { OWNER_FILE, isAbandoned } from '../spool/spool-owner';
import { decodeSegment } from '../spool/spool-record';
import { CliIo } from './cli-io';
import { printable } from './cli-broker';

const SEGMENT_FILE = /^\d+\.spool$/;

/** What some spool files hold. */
interface Holdings {
  files: number;
  records: number;
  bytes: number;
  /** When the oldest record was spooled (ms since the epoch). */
  oldest: number | undefined;
  /** Bytes that hold no record (damaged, or a write under way). */
  unreadable: number;
}

/** Reads the files (only reads: a live process's segments are left as they are). */
async function holdingsOf(files: readonly string[]): Promise<Holdings> {
  const h: Holdings = { files: 0, records: 0, bytes: 0, oldest: undefined, unreadable: 0 };
  for (const file of files) {
    let data: Buffer;
    try {
      data = await fs.promises.readFile(file);
    } catch {
      continue; // sent and deleted, or adopted, since it was listed
    }
    const { records, damaged } = decodeSegment(data);
    h.files++;
    h.bytes += data.length;
    h.records += records.length;
    h.unreadable += damaged.reduce((sum, d) => sum + d.bytes.length, 0);
    for (const r of records) if (h.oldest === undefined || r.spooledAt < h.oldest) h.oldest = r.spooledAt;
  }
  return h;
}

/** "12 s", "5 min", "3 h", "2 days": how long ago, roughly. */
export function ageText(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}

function describe(h: Holdings, unit: string): string {
  const oldest =
    h.oldest === undefined
      ? ''
      : `, the oldest spooled ${ageText(Date.now() - h.oldest)} ago (${new Date(h.oldest).toISOString()})`;
  const unreadable = h.unreadable > 0 ? `, ${h.unreadable} byte(s) holding no record` : '';
  return `${h.files} ${unit}(s), ${h.records} record(s), ${h.bytes} byte(s)${oldest}${unreadable}`;
}

/** Who holds a process's directory, read from its owner file (text from disk: shown escaped). */
async function holderOf(dir: string): Promise<string> {
  const file = path.join(dir, OWNER_FILE);
  let owner: { host: string; pid: number } | undefined;
  try {
    const o = (JSON.parse(await fs.promises.readFile(file, 'utf8')) ?? {}) as { host?: unknown; pid?: unknown };
    if (typeof o.host === 'string' && Number.isInteger(o.pid)) owner = { host: o.host, pid: o.pid as number };
  } catch {
    // missing or not JSON: said as such
  }
  const who = owner ? `pid ${owner.pid} on host ${printable(owner.host, 80)}` : 'no readable owner file';
  if (await isAbandoned(dir, false)) {
    return `abandoned (${who}): the next process to start on this spool directory adopts and sends it`;
  }
  const lease = `taken as gone ${SPOOL_LEASE_MS / 1000} s after its last heartbeat`;
  if (!owner) return `held (${who} yet; ${lease})`;
  if (owner.host === hostname()) return `held by a live process (${who})`;
  const beat = await fs.promises.stat(file).then(
    (st) => ageText(Date.now() - st.mtimeMs),
    () => '?',
  );
  return `held by another host (${who}; heartbeat ${beat} ago, ${lease})`;
}

/** The entries of a directory, or undefined when it does not exist. */
export async function entriesOf(dir: string): Promise<fs.Dirent[] | undefined> {
  try {
    return await fs.promises.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The spool files (`*.spool`) directly in `dir`, by name (oldest first for `refused/`). */
export async function spoolFilesIn(dir: string, pattern = /\.spool$/): Promise<string[]> {
  const entries = (await entriesOf(dir)) ?? [];
  return entries
    .filter((e) => e.isFile() && pattern.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10) || a.localeCompare(b))
    .map((name) => path.join(dir, name));
}

/** `mo-amqp spool status`: prints what each part of the spool directory holds. Only reads. */
export async function spoolStatus(dir: string, io: CliIo): Promise<void> {
  const entries = (await entriesOf(dir)) as fs.Dirent[];
  const processes = entries.filter((e) => e.isDirectory() && e.name !== REFUSED_DIR && e.name !== DAMAGED_DIR);
  io.out(`${dir}:`);
  let waiting = 0;
  for (const name of processes.map((e) => e.name).sort()) {
    const sub = path.join(dir, name);
    const h = await holdingsOf(await spoolFilesIn(sub, SEGMENT_FILE));
    waiting += h.records;
    io.out(`  ${printable(name, 80)}/: ${describe(h, 'segment')}; ${await holderOf(sub)}`);
  }
  if (processes.length === 0) io.out('  no process directory: nothing waits to be sent');
  const refused = await holdingsOf(await spoolFilesIn(path.join(dir, REFUSED_DIR)));
  const advice = refused.records > 0 ? '; send them with "mo-amqp spool resend" once the cause is fixed' : '';
  io.out(`  ${REFUSED_DIR}/: ${describe(refused, 'file')}${advice}`);
  const damaged = (await entriesOf(path.join(dir, DAMAGED_DIR))) ?? [];
  let damagedBytes = 0;
  for (const e of damaged) {
    damagedBytes += await fs.promises.stat(path.join(dir, DAMAGED_DIR, e.name)).then(
      (st) => (st.isFile() ? st.size : 0),
      () => 0,
    );
  }
  const look = damaged.length > 0 ? ' (never sent; for a person to look at)' : '';
  io.out(
    `  ${DAMAGED_DIR}/: ${damaged.length} entr${damaged.length === 1 ? 'y' : 'ies'}, ${damagedBytes} byte(s)${look}`,
  );
  io.out(`${waiting} record(s) wait to be sent, ${refused.records} refused`);
}
