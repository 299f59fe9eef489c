import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { settlesWithin } from '../util/settles-within';
import { DAMAGED_DIR, REFUSED_DIR, SegmentInfo, SpoolDirectories } from './spool-directories';
import { makeDirectory, writeSynced } from './spool-fs';
import { SpoolRecord, decodeSegment, encodeRecord } from './spool-record';

export type { SpoolRecord } from './spool-record';
export { SPOOL_LEASE_MS } from './spool-owner';
export { DAMAGED_DIR, REFUSED_DIR } from './spool-directories';

const SEGMENT_BYTES = 8 * 1024 * 1024;

/** Bounds each file-system step of start-up: a hung mount must not hang the app. */
export const SPOOL_START_BOUND_MS = 10_000;

/**
 * An append-only spool in a directory of its own per instance
 * (`<dir>/<pid>-<random>/<n>.spool`). Appends made in the same event-loop turn
 * share one write and one fsync; an append resolves only after its fsync.
 *
 * A directory whose holder is gone is adopted by the next spool to look
 * (renamed, so only one does; see `spool-directories.ts`). Each directory says
 * who holds it (`owner.json`, see `spool-owner.ts`), and the holder touches that
 * file while it is open.
 *
 * Nothing on disk is trusted: bytes that are no record, and entries that are no
 * segment, are moved to `<dir>/damaged/` and reported; the records around them
 * are still sent.
 */
export class DiskSpool {
  private readonly directories: SpoolDirectories;
  private handle: fs.promises.FileHandle | undefined;
  private segment = 0;
  private segmentBytes = 0;
  /** The segment appends go to, from the moment it is chosen until it is handed out; never listed. */
  private currentFile: string | undefined;
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
    this.directories = new SpoolDirectories(dir, this.segments, () => this.currentFile, report);
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
    await this.directories.close();
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
    return (await bounded(() => this.directories.listSegments(), 'reading what earlier processes left')).length;
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
    return this.directories.listSegments();
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
      const target = this.directories.damagedName(path.basename(file));
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
    if (dir !== this.directories.own && (await fs.promises.readdir(dir)).every((f) => !f.endsWith('.spool'))) {
      await this.directories.release(dir);
    }
  }

  /** The segment with `keep` only: a new file, fsynced, renamed over it. */
  private async rewrite(file: string, keep: SpoolRecord[]): Promise<void> {
    const rest = Buffer.concat(keep.map(encodeRecord));
    await writeSynced(`${file}.tmp`, rest);
    await fs.promises.rename(`${file}.tmp`, file);
    this.segments.set(file, { bytes: rest.length, records: keep.length, oldest: keep[0]?.spooledAt });
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
    const file = path.join(this.directories.own, `${String(this.segment).padStart(8, '0')}.spool`);
    this.currentFile = file;
    this.segments.set(file, { bytes: 0, records: 0, oldest: undefined });
    await this.directories.holdOwn();
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

/** Runs a start-up step, failing it when the file system does not answer within `SPOOL_START_BOUND_MS`. */
async function bounded<T>(step: () => Promise<T>, what: string): Promise<T> {
  const running = step();
  if (await settlesWithin(running, SPOOL_START_BOUND_MS)) return running;
  running.catch(() => undefined);
  throw new Error(`${what} took longer than ${SPOOL_START_BOUND_MS} ms; is the file system hung?`);
}
