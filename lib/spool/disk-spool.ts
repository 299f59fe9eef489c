import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { settlesWithin } from '../util/settles-within';
import { OWNER_FILE, SPOOL_LEASE_MS, isAbandoned, touchOwner, writeOwner } from './spool-owner';
import { SpoolRecord, countRecords, decodeSegment, encodeRecord } from './spool-record';

export type { SpoolRecord } from './spool-record';
export { SPOOL_LEASE_MS } from './spool-owner';

const SEGMENT_BYTES = 8 * 1024 * 1024;
const SEGMENT_FILE = /^\d+\.spool$/;

/** Where records the broker refuses for good are set aside, never sent again by the spool. */
export const REFUSED_DIR = 'refused';
/** Where what cannot be read as records is set aside: damaged bytes, stray entries. */
export const DAMAGED_DIR = 'damaged';
const HEARTBEAT_MS = SPOOL_LEASE_MS / 3;
/** Bounds each file-system step of start-up: a hung mount must not hang the app. */
export const SPOOL_START_BOUND_MS = 10_000;

/** Directories held by the open spools of this process. */
const heldHere = new Set<string>();

interface SegmentInfo {
  bytes: number;
  records: number;
  oldest: number | undefined;
}

/**
 * An append-only spool in a directory of its own per instance
 * (`<dir>/<pid>-<random>/<n>.spool`). Appends made in the same event-loop turn
 * share one write and one fsync; an append resolves only after its fsync.
 *
 * A directory whose holder is gone is adopted by the next spool to look
 * (renamed, so only one does). Each directory says who holds it (`owner.json`,
 * see `spool-owner.ts`), and the holder touches that file while it is open.
 *
 * Nothing on disk is trusted: bytes that are no record, and entries that are no
 * segment, are moved to `<dir>/damaged/` and reported; the records around them
 * are still sent.
 */
export class DiskSpool {
  private readonly own: string;
  /** Directories this spool holds: its own, once created, and adopted ones. */
  private readonly held = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  private handle: fs.promises.FileHandle | undefined;
  private segment = 0;
  private segmentBytes = 0;
  /** The segment appends go to, from the moment it is chosen until it is handed out; never listed. */
  private currentFile: string | undefined;
  /** One directory scan at a time: two at once would race to adopt and set aside the same entries. */
  private scanning: Promise<unknown> = Promise.resolve();
  private batch: { bytes: Buffer; spooledAt: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  /** Every segment on disk this process knows (its own and adopted ones), with what it holds. */
  private readonly segments = new Map<string, SegmentInfo>();
  /** Bytes accepted but not yet written. */
  private pendingBytes = 0;

  /** `report` hears of everything set aside as damaged, with where it went. */
  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly report: (message: string) => void = () => undefined,
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
    await this.detachSegment();
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

  /**
   * Makes sure the directory exists and can be written in; rejects with the
   * file system's error if not, or when that takes longer than `SPOOL_START_BOUND_MS`.
   */
  async check(): Promise<void> {
    await bounded(async () => {
      await makeDirectory(this.dir);
      await fs.promises.access(this.dir, fs.constants.W_OK | fs.constants.X_OK);
    }, 'creating and checking the directory');
  }

  /** At start-up: adopts what processes that are gone left behind; resolves with how many segments wait. */
  async recover(): Promise<number> {
    return (await bounded(() => this.listSegments(), 'reading what earlier processes left')).length;
  }

  /** Writes the record and fsyncs it; rejects when the spool is full (nothing written then). */
  append(record: Omit<SpoolRecord, 'spooledAt'>): Promise<void> {
    const spooledAt = Date.now();
    const bytes = encodeRecord({ ...record, spooledAt });
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
    await this.detachSegment();
    return this.listSegments();
  }

  /**
   * Stops appending to the current segment, once no write is under way; the
   * next append starts a new one. Synchronous from the last check on, so no
   * append can write to a handle being closed.
   */
  private async detachSegment(): Promise<void> {
    while (this.flushing) await this.flushing;
    const handle = this.handle;
    this.handle = undefined;
    this.currentFile = undefined;
    await handle?.close();
  }

  private listSegments(): Promise<string[]> {
    const scan = this.scanning.then(() => this.scanSegments());
    this.scanning = scan.catch(() => undefined);
    return scan;
  }

  private async scanSegments(): Promise<string[]> {
    const segments: string[] = [];
    for (const sub of await this.ownedDirectories()) {
      let entries: fs.Dirent[];
      try {
        entries = await fs.promises.readdir(sub, { withFileTypes: true });
      } catch {
        this.forget(sub); // taken by another spool
        continue;
      }
      const files: string[] = [];
      for (const entry of entries) {
        if (!entry.name.endsWith('.spool')) continue;
        const full = path.join(sub, entry.name);
        if (entry.isFile() && SEGMENT_FILE.test(entry.name)) files.push(entry.name);
        else await this.setAsideEntry(full, entry.isFile() ? 'not named as a segment' : 'not a file');
      }
      files.sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
      for (const file of files.map((f) => path.join(sub, f))) {
        // The segment being written is not handed out (takeSegments detaches it first).
        if (file === this.currentFile) continue;
        segments.push(file);
        if (!this.segments.has(file)) {
          // Adopted from a process that is gone: counted from the records' headers.
          const data = await fs.promises.readFile(file);
          const { mtimeMs } = await fs.promises.stat(file);
          this.segments.set(file, { bytes: data.length, records: countRecords(data), oldest: mtimeMs });
        }
      }
    }
    return segments;
  }

  /**
   * Reads a segment's records. What holds no record (torn, overwritten, or not
   * a record though its checksum is right) is moved to `damaged/` first, the
   * segment rewritten without it, and reported; the records around it are returned.
   */
  async readSegment(file: string): Promise<SpoolRecord[]> {
    let data: Buffer;
    try {
      data = await fs.promises.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.segments.delete(file); // another spool took its directory: it sends them
      return [];
    }
    const { records, damaged } = decodeSegment(data);
    if (damaged.length > 0) {
      const target = this.damagedName(path.basename(file));
      await makeDirectory(path.dirname(target));
      await writeSynced(target, Buffer.concat(damaged.map((d) => d.bytes)));
      await this.rewrite(file, records);
      for (const d of damaged) {
        this.report(
          `Spool record at ${file}, byte ${d.offset} (${d.bytes.length} bytes), is damaged (${d.reason}): ` +
            `set aside in ${target}; the records around it are sent`,
        );
      }
    }
    const known = this.segments.get(file);
    if (known) {
      known.records = records.length;
      known.oldest = records[0]?.spooledAt ?? known.oldest;
    }
    return records;
  }

  /**
   * Moves `refused` out of segment `file` into `<dir>/refused/` (or `damaged/`;
   * same record format, fsynced first), and rewrites the segment with `keep`
   * only (a new file renamed over it). Resolves with the file they went to.
   */
  async setAside(
    file: string,
    refused: SpoolRecord[],
    keep: SpoolRecord[],
    folder: typeof REFUSED_DIR | typeof DAMAGED_DIR = REFUSED_DIR,
  ): Promise<string> {
    const target = path.join(this.dir, folder, `${Date.now()}-${randomBytes(4).toString('hex')}.spool`);
    await makeDirectory(path.dirname(target));
    await writeSynced(target, Buffer.concat(refused.map(encodeRecord)));
    await this.rewrite(file, keep);
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

  /** The segment with `keep` only: a new file, fsynced, renamed over it. */
  private async rewrite(file: string, keep: SpoolRecord[]): Promise<void> {
    const rest = Buffer.concat(keep.map(encodeRecord));
    await writeSynced(`${file}.tmp`, rest);
    await fs.promises.rename(`${file}.tmp`, file);
    this.segments.set(file, { bytes: rest.length, records: keep.length, oldest: keep[0]?.spooledAt });
  }

  private damagedName(name: string): string {
    return path.join(this.dir, DAMAGED_DIR, `${Date.now()}-${randomBytes(4).toString('hex')}-${name}`);
  }

  /** Moves an entry that is no segment out of the way, to `damaged/`, and says so. */
  private async setAsideEntry(full: string, why: string): Promise<void> {
    const target = this.damagedName(path.basename(full));
    await makeDirectory(path.dirname(target));
    try {
      await fs.promises.rename(full, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // another spool moved it first
      throw err;
    }
    this.report(`Spool entry ${full} is ${why}: set aside in ${target}; the segments beside it are sent`);
  }

  /**
   * Deletes a directory that holds nothing more to send. A segment in it (an
   * append during shutdown may just have made one) keeps it; anything else
   * unexpected is set aside first; only an empty directory is removed.
   */
  private async release(dir: string): Promise<void> {
    const entries = await fs.promises.readdir(dir).catch(() => [] as string[]);
    if (entries.some((name) => name.endsWith('.spool'))) return;
    this.forget(dir);
    for (const name of entries) {
      const full = path.join(dir, name);
      if (name === OWNER_FILE || name.startsWith(`${OWNER_FILE}.`) || name.endsWith('.tmp')) {
        await fs.promises.rm(full, { force: true });
      } else {
        await this.setAsideEntry(full, 'not part of a spool').catch(() => undefined);
      }
    }
    await fs.promises.rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      // A segment appeared in the meantime: the directory stays, held again.
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST' && err.code !== 'ENOENT') throw err;
      if (err.code !== 'ENOENT' && dir === this.own) void this.hold(dir).catch(() => undefined);
    });
  }

  private forget(dir: string): void {
    this.held.delete(dir);
    heldHere.delete(dir);
    for (const file of this.segments.keys()) if (path.dirname(file) === dir) this.segments.delete(file);
  }

  /** Marks `dir` as held by this spool (owner file, heartbeat). */
  private async hold(dir: string): Promise<void> {
    await writeOwner(dir);
    this.held.add(dir);
    heldHere.add(dir);
    this.heartbeat ??= setInterval(() => {
      for (const held of this.held) touchOwner(held).catch(() => undefined);
    }, HEARTBEAT_MS).unref();
  }

  /** This spool's directories, after adopting those whose holder is gone (by renaming them). */
  private async ownedDirectories(): Promise<string[]> {
    await makeDirectory(this.dir);
    const entries = await fs.promises.readdir(this.dir, { withFileTypes: true });
    for (const name of entries.filter((e) => e.isDirectory()).map((e) => e.name)) {
      const full = path.join(this.dir, name);
      if (name === REFUSED_DIR || name === DAMAGED_DIR) continue;
      if (this.held.has(full) || full === this.own || !(await isAbandoned(full, heldHere.has(full)))) continue;
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
        const handle = this.handle as fs.promises.FileHandle;
        const file = this.currentFile as string;
        await handle.write(bytes);
        await handle.sync();
        this.segmentBytes += bytes.length;
        let segment = this.segments.get(file);
        if (!segment) this.segments.set(file, (segment = { bytes: 0, records: 0, oldest: undefined }));
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

  private async nextSegment(): Promise<void> {
    const previous = this.handle;
    this.handle = undefined;
    await previous?.close();
    // Chosen before any wait, so a scan in the meantime leaves it alone.
    this.segment++;
    this.segmentBytes = 0;
    const file = path.join(this.own, `${String(this.segment).padStart(8, '0')}.spool`);
    this.currentFile = file;
    this.segments.set(file, { bytes: 0, records: 0, oldest: undefined });
    await makeDirectory(this.own);
    if (!heldHere.has(this.own)) await this.hold(this.own); // first segment, or the first after close()
    this.handle = await fs.promises.open(file, 'a');
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

/**
 * `mkdir -p`, one level at a time. Node's own recursive mkdir spins for ever
 * (100 % CPU) where a parent exists but refuses new entries, as under /proc.
 */
export async function makeDirectory(dir: string): Promise<void> {
  const absolute = path.resolve(dir);
  const parent = path.dirname(absolute);
  try {
    await fs.promises.mkdir(absolute);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if (!(await fs.promises.stat(absolute)).isDirectory())
        throw new Error(`${absolute} exists and is not a directory`);
      return;
    }
    if (code !== 'ENOENT' || parent === absolute) throw err;
    await makeDirectory(parent);
    await fs.promises.mkdir(absolute).catch(async (again: NodeJS.ErrnoException) => {
      if (again.code !== 'EEXIST' || !(await fs.promises.stat(absolute)).isDirectory()) throw again;
    });
  }
}

/** Runs a start-up step, failing it when the file system does not answer within `SPOOL_START_BOUND_MS`. */
async function bounded<T>(step: () => Promise<T>, what: string): Promise<T> {
  const running = step();
  if (await settlesWithin(running, SPOOL_START_BOUND_MS)) return running;
  running.catch(() => undefined);
  throw new Error(`${what} took longer than ${SPOOL_START_BOUND_MS} ms; is the file system hung?`);
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
