import type { Options } from 'amqplib';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';

/** One message kept on disk until the broker has confirmed it. */
export interface SpoolRecord {
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  readonly properties: Options.Publish;
  /** When it was spooled (ms since the epoch). */
  readonly spooledAt: number;
}

/** A record on disk is MAGIC, the payload's length and CRC-32, then the payload (JSON). */
const MAGIC = Buffer.from('MOS1');
const HEADER_BYTES = 12;
const SEGMENT_BYTES = 8 * 1024 * 1024;

export type SpoolProblem = (file: string, offset: number, reason: string) => void;

/** Who holds a spool directory: written to `<dir>/owner.json`, its mtime the holder's heartbeat. */
interface Owner {
  host: string;
  pid: number;
  /** The process's start time in clock ticks since boot (Linux), so a reused pid is told apart; else null. */
  start: string | null;
}

const OWNER_FILE = 'owner.json';
/** Where records the broker refuses for good are set aside, never sent again by the spool. */
export const REFUSED_DIR = 'refused';
/** A directory of another host whose owner file was not touched for this long is taken as abandoned. */
export const SPOOL_LEASE_MS = 15_000;
const HEARTBEAT_MS = SPOOL_LEASE_MS / 3;

/** Directories held by the open spools of this process. */
const heldHere = new Set<string>();

/**
 * An append-only spool in a directory of its own per instance
 * (`<dir>/<pid>-<random>/<n>.spool`). Appends made in the same event-loop turn
 * share one write and one fsync; an append resolves only after its fsync.
 *
 * A directory whose holder is gone is adopted by the next spool to look
 * (renamed, so only one does). Each directory says who holds it (`owner.json`:
 * host, pid and the process's start time, so a pid reused after a container
 * restart is not mistaken for the holder), and the holder touches that file
 * while it is open. On the same host the holder is checked directly; a
 * directory of another host (a shared volume) is adopted once its owner file
 * is older than `SPOOL_LEASE_MS`.
 */
export class DiskSpool {
  private readonly own: string;
  /** Directories this spool holds: its own, once created, and adopted ones. */
  private readonly held = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  private handle: fs.promises.FileHandle | undefined;
  private segment = 0;
  private segmentBytes = 0;
  private batch: { bytes: Buffer; spooledAt: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  /** Every segment on disk this process knows (its own and adopted ones), with what it holds. */
  private readonly segments = new Map<string, { bytes: number; records: number; oldest: number | undefined }>();
  /** Bytes accepted but not yet written. */
  private pendingBytes = 0;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
  ) {
    this.own = path.join(dir, `${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  /** Bytes and records on disk, and when the oldest was spooled. */
  get stats(): { bytes: number; records: number; oldestSpooledAt: number | undefined } {
    let bytes = this.pendingBytes;
    let records = 0;
    let oldest: number | undefined;
    for (const segment of this.segments.values()) {
      bytes += segment.bytes;
      records += segment.records;
      if (segment.oldest !== undefined && (oldest === undefined || segment.oldest < oldest)) oldest = segment.oldest;
    }
    return { bytes, records, oldestSpooledAt: oldest };
  }

  /** Finishes the writes under way and closes the segment being written. */
  async close(): Promise<void> {
    await this.flushing;
    await this.handle?.close();
    this.handle = undefined;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const dir of this.held) heldHere.delete(dir);
    // Nothing left to send: no directory is left behind either.
    const left = await fs.promises.readdir(this.own).catch(() => undefined);
    if (left && left.every((f) => !f.endsWith('.spool'))) await this.release(this.own);
  }

  /** True when nothing is on disk or being written. */
  isEmpty(): boolean {
    if (this.pendingBytes > 0) return false;
    for (const segment of this.segments.values()) if (segment.bytes > 0) return false;
    return true;
  }

  /** Makes sure the directory exists and can be written in; rejects with the file system's error if not. */
  async check(): Promise<void> {
    await fs.promises.mkdir(this.dir, { recursive: true });
    await fs.promises.access(this.dir, fs.constants.W_OK | fs.constants.X_OK);
  }

  /** At start-up: adopts what processes that are gone left behind; resolves with how many segments wait. */
  async recover(): Promise<number> {
    const waiting = await this.listSegments();
    return waiting.length;
  }

  /** Writes the record and fsyncs it; rejects when the spool is full (nothing written then). */
  append(record: Omit<SpoolRecord, 'spooledAt'>): Promise<void> {
    const spooledAt = Date.now();
    const bytes = encode({ ...record, spooledAt });
    const held = this.stats.bytes;
    if (held + bytes.length > this.maxBytes) return Promise.reject(new SpoolFullError(held, this.maxBytes));
    this.pendingBytes += bytes.length;
    return new Promise<void>((resolve, reject) => {
      this.batch.push({ bytes, spooledAt, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /**
   * The segments waiting to be sent, oldest first: this process's closed ones
   * and those of processes that are gone (adopted now). The segment being
   * written is closed first, so everything spooled so far is included.
   */
  async takeSegments(): Promise<string[]> {
    await this.flushing;
    if (this.handle) {
      await this.handle.close();
      this.handle = undefined;
    }
    return this.listSegments();
  }

  private async listSegments(): Promise<string[]> {
    const segments: string[] = [];
    for (const sub of await this.ownedDirectories()) {
      let files: string[];
      try {
        files = (await fs.promises.readdir(sub)).filter((f) => f.endsWith('.spool'));
      } catch {
        this.forget(sub); // taken by another spool
        continue;
      }
      files.sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
      for (const file of files.map((f) => path.join(sub, f))) {
        // The segment being written is not handed out (takeSegments closes it first).
        if (this.handle && file === this.currentFile) continue;
        segments.push(file);
        if (!this.segments.has(file)) {
          // Adopted from a process that is gone: what it holds is only known by size.
          const { size, mtimeMs } = await fs.promises.stat(file);
          this.segments.set(file, { bytes: size, records: 0, oldest: mtimeMs }); // counted when read
        }
      }
    }
    return segments;
  }

  /** Reads a segment's records; a damaged one is reported and skipped, the rest still read. */
  async readSegment(file: string, problem: SpoolProblem): Promise<SpoolRecord[]> {
    let data: Buffer;
    try {
      data = await fs.promises.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.segments.delete(file); // another spool took its directory: it sends them
      return [];
    }
    const records: SpoolRecord[] = [];
    let offset = 0;
    while (offset < data.length) {
      const damage = damageAt(data, offset);
      if (damage) {
        problem(file, offset, damage);
        const next = data.indexOf(MAGIC, offset + 1); // the next record that may be whole
        if (next < 0) break;
        offset = next;
        continue;
      }
      const end = offset + HEADER_BYTES + data.readUInt32BE(offset + 4);
      records.push(decode(data.subarray(offset + HEADER_BYTES, end)));
      offset = end;
    }
    const known = this.segments.get(file);
    if (known) {
      known.records = records.length;
      known.oldest = records[0]?.spooledAt ?? known.oldest;
    }
    return records;
  }

  /**
   * Moves `refused` out of segment `file` into `<dir>/refused/` (same record
   * format, fsynced first), and rewrites the segment with `keep` only (a new file
   * renamed over it). Resolves with the file the refused records went to.
   */
  async setAside(file: string, refused: SpoolRecord[], keep: SpoolRecord[]): Promise<string> {
    const target = path.join(this.dir, REFUSED_DIR, `${Date.now()}-${randomBytes(4).toString('hex')}.spool`);
    await fs.promises.mkdir(path.dirname(target), { recursive: true });
    await writeSynced(target, Buffer.concat(refused.map(encode)));
    const rest = Buffer.concat(keep.map(encode));
    await writeSynced(`${file}.tmp`, rest);
    await fs.promises.rename(`${file}.tmp`, file);
    this.segments.set(file, { bytes: rest.length, records: keep.length, oldest: keep[0]?.spooledAt });
    return target;
  }

  /** Forgets a segment whose records the broker has all confirmed. */
  async remove(file: string): Promise<void> {
    await fs.promises.rm(file, { force: true });
    this.segments.delete(file);
    const dir = path.dirname(file);
    if (dir !== this.own && (await fs.promises.readdir(dir)).every((f) => !f.endsWith('.spool'))) {
      await this.release(dir);
    }
  }

  /** Deletes an adopted directory that holds nothing more. */
  private async release(dir: string): Promise<void> {
    this.forget(dir);
    await fs.promises.rm(dir, { recursive: true, force: true });
  }

  private forget(dir: string): void {
    this.held.delete(dir);
    heldHere.delete(dir);
    for (const file of this.segments.keys()) if (path.dirname(file) === dir) this.segments.delete(file);
  }

  /** Marks `dir` as held by this spool (owner file, heartbeat). */
  private async hold(dir: string): Promise<void> {
    const owner: Owner = { host: hostname(), pid: process.pid, start: startOf(process.pid) };
    await fs.promises.writeFile(path.join(dir, OWNER_FILE), JSON.stringify(owner));
    this.held.add(dir);
    heldHere.add(dir);
    this.heartbeat ??= setInterval(() => {
      const now = new Date();
      for (const held of this.held) fs.promises.utimes(path.join(held, OWNER_FILE), now, now).catch(() => undefined);
    }, HEARTBEAT_MS).unref();
  }

  /** This spool's directories, after adopting those whose holder is gone (by renaming them). */
  private async ownedDirectories(): Promise<string[]> {
    await fs.promises.mkdir(this.dir, { recursive: true });
    const entries = await fs.promises.readdir(this.dir, { withFileTypes: true });
    for (const name of entries.filter((e) => e.isDirectory()).map((e) => e.name)) {
      const full = path.join(this.dir, name);
      if (name === REFUSED_DIR) continue;
      if (this.held.has(full) || full === this.own || !(await isAbandoned(full))) continue;
      // Rename is atomic: of two spools adopting at once, one wins.
      const target = path.join(this.dir, `adopted-${randomBytes(6).toString('hex')}`);
      try {
        await fs.promises.rename(full, target);
      } catch {
        continue; // taken by another spool
      }
      try {
        await this.hold(target);
        const files = await fs.promises.readdir(target);
        if (files.every((f) => !f.endsWith('.spool'))) await this.release(target); // left empty
      } catch {
        this.forget(target); // another spool took it in between (it read the old owner file)
      }
    }
    return [...this.held].filter((dir) => dir !== this.own).concat(this.held.has(this.own) ? [this.own] : []);
  }

  private async flush(): Promise<void> {
    while (this.batch.length > 0) {
      const batch = this.batch;
      this.batch = [];
      const bytes = Buffer.concat(batch.map((b) => b.bytes));
      try {
        if (!this.handle || this.segmentBytes >= SEGMENT_BYTES) await this.nextSegment();
        await (this.handle as fs.promises.FileHandle).write(bytes);
        await (this.handle as fs.promises.FileHandle).sync();
        this.segmentBytes += bytes.length;
        const segment = this.segments.get(this.currentFile) as {
          bytes: number;
          records: number;
          oldest: number | undefined;
        };
        segment.bytes += bytes.length;
        segment.records += batch.length;
        segment.oldest ??= batch[0].spooledAt;
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err as Error);
      } finally {
        this.pendingBytes -= bytes.length;
      }
    }
    this.flushing = undefined;
  }

  private currentFile = '';

  private async nextSegment(): Promise<void> {
    await this.handle?.close();
    await fs.promises.mkdir(this.own, { recursive: true });
    if (!heldHere.has(this.own)) await this.hold(this.own); // first segment, or the first after close()
    this.segment++;
    this.segmentBytes = 0;
    this.currentFile = path.join(this.own, `${String(this.segment).padStart(8, '0')}.spool`);
    this.handle = await fs.promises.open(this.currentFile, 'a');
    this.segments.set(this.currentFile, { bytes: 0, records: 0, oldest: undefined });
  }
}

/** The spool holds `AMQP__SPOOL_MAX_BYTES` already. */
export class SpoolFullError extends Error {
  override readonly name = 'SpoolFullError';

  constructor(
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`the spool is full (${bytes} of ${maxBytes} bytes, AMQP__SPOOL_MAX_BYTES)`);
  }
}

/** A record on disk: MAGIC, the payload's length and CRC-32, the payload. */
function encode(record: SpoolRecord): Buffer {
  const payload = Buffer.from(
    JSON.stringify({
      e: record.exchange,
      k: record.routingKey,
      p: record.properties,
      b: record.content.toString('base64'),
      t: record.spooledAt,
    }),
  );
  const bytes = Buffer.alloc(HEADER_BYTES + payload.length);
  MAGIC.copy(bytes, 0);
  bytes.writeUInt32BE(payload.length, 4);
  bytes.writeUInt32BE(crc32(payload), 8);
  payload.copy(bytes, HEADER_BYTES);
  return bytes;
}

/** The record whose payload this is (its checksum already checked). */
function decode(payload: Buffer): SpoolRecord {
  const parsed = JSON.parse(payload.toString('utf8'));
  return {
    exchange: parsed.e,
    routingKey: parsed.k,
    properties: parsed.p,
    content: Buffer.from(parsed.b, 'base64'),
    spooledAt: parsed.t,
  };
}

/** Why no whole record starts at `offset`, or `undefined` when one does. */
function damageAt(data: Buffer, offset: number): string | undefined {
  if (data.length - offset < HEADER_BYTES) return 'truncated record header';
  if (!data.subarray(offset, offset + 4).equals(MAGIC)) return 'no record starts here';
  const length = data.readUInt32BE(offset + 4);
  const end = offset + HEADER_BYTES + length;
  if (end > data.length) return `truncated record (${data.length - offset - HEADER_BYTES} of ${length} bytes)`;
  if (crc32(data.subarray(offset + HEADER_BYTES, end)) !== data.readUInt32BE(offset + 8)) return 'checksum mismatch';
  return undefined;
}

async function writeSynced(file: string, bytes: Buffer): Promise<void> {
  const handle = await fs.promises.open(file, 'w');
  try {
    await handle.write(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** True when the directory's holder is known to be gone (so it may be adopted). */
async function isAbandoned(dir: string): Promise<boolean> {
  let owner: Owner | undefined;
  let touched = 0;
  try {
    const file = path.join(dir, OWNER_FILE);
    owner = JSON.parse(await fs.promises.readFile(file, 'utf8')) as Owner;
    touched = (await fs.promises.stat(file)).mtimeMs;
  } catch {
    // No owner file: one being created now (give it a lease from the directory's
    // own time), or one from before owner files (judged by the pid in its name).
    const since = await fs.promises.stat(dir).then(
      (st) => st.mtimeMs,
      () => 0,
    );
    if (Date.now() - since < SPOOL_LEASE_MS) return false;
    const pid = Number.parseInt(path.basename(dir), 10);
    return !Number.isNaN(pid) && !(pid !== process.pid && isRunning(pid));
  }
  if (owner.host !== hostname()) return Date.now() - touched > SPOOL_LEASE_MS;
  if (owner.pid === process.pid && owner.start === startOf(process.pid)) return !heldHere.has(dir);
  if (owner.start !== null) return startOf(owner.pid) !== owner.start;
  return !isRunning(owner.pid);
}

/** The start time of process `pid` in clock ticks since boot, from /proc (Linux); null elsewhere or when gone. */
function startOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; the command name (field 2, in parentheses) may itself hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
