import type { Options } from 'amqplib';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
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

/**
 * An append-only spool in a directory of its own per process
 * (`<dir>/<pid>-<random>/<n>.spool`). Appends made in the same event-loop turn
 * share one write and one fsync; an append resolves only after its fsync.
 * A directory left by a process that is gone is adopted by the next one to start.
 */
export class DiskSpool {
  private readonly own: string;
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
  }

  /** True when nothing is on disk or being written. */
  isEmpty(): boolean {
    if (this.pendingBytes > 0) return false;
    for (const segment of this.segments.values()) if (segment.bytes > 0) return false;
    return true;
  }

  /** At start-up: adopts what processes that are gone left behind; resolves with how many segments wait. */
  async recover(): Promise<number> {
    const waiting = await this.listSegments();
    return waiting.length;
  }

  /** Writes the record and fsyncs it; rejects when the spool is full (nothing written then). */
  append(record: Omit<SpoolRecord, 'spooledAt'>): Promise<void> {
    const spooledAt = Date.now();
    const payload = Buffer.from(
      JSON.stringify({
        e: record.exchange,
        k: record.routingKey,
        p: record.properties,
        b: record.content.toString('base64'),
        t: spooledAt,
      }),
    );
    const bytes = Buffer.alloc(HEADER_BYTES + payload.length);
    MAGIC.copy(bytes, 0);
    bytes.writeUInt32BE(payload.length, 4);
    bytes.writeUInt32BE(crc32(payload), 8);
    payload.copy(bytes, HEADER_BYTES);
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
      const files = (await fs.promises.readdir(sub)).filter((f) => f.endsWith('.spool'));
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
    const data = await fs.promises.readFile(file);
    const records: SpoolRecord[] = [];
    let offset = 0;
    while (offset < data.length) {
      if (data.length - offset < HEADER_BYTES || !data.subarray(offset, offset + 4).equals(MAGIC)) {
        const next = data.indexOf(MAGIC, offset + 1);
        problem(
          file,
          offset,
          data.length - offset < HEADER_BYTES ? 'truncated record header' : 'no record starts here',
        );
        if (next < 0) break;
        offset = next;
        continue;
      }
      const length = data.readUInt32BE(offset + 4);
      const end = offset + HEADER_BYTES + length;
      if (end > data.length) {
        problem(file, offset, `truncated record (${data.length - offset - HEADER_BYTES} of ${length} bytes)`);
        const next = data.indexOf(MAGIC, offset + 1);
        if (next < 0) break;
        offset = next;
        continue;
      }
      const payload = data.subarray(offset + HEADER_BYTES, end);
      if (crc32(payload) !== data.readUInt32BE(offset + 8)) {
        problem(file, offset, 'checksum mismatch');
        const next = data.indexOf(MAGIC, offset + 1);
        if (next < 0) break;
        offset = next;
        continue;
      }
      const parsed = JSON.parse(payload.toString('utf8'));
      records.push({
        exchange: parsed.e,
        routingKey: parsed.k,
        properties: parsed.p,
        content: Buffer.from(parsed.b, 'base64'),
        spooledAt: parsed.t,
      });
      offset = end;
    }
    const known = this.segments.get(file);
    if (known) {
      known.records = records.length;
      known.oldest = records[0]?.spooledAt ?? known.oldest;
    }
    return records;
  }

  /** Forgets a segment whose records the broker has all confirmed. */
  async remove(file: string): Promise<void> {
    await fs.promises.rm(file, { force: true });
    this.segments.delete(file);
    const dir = path.dirname(file);
    if (dir !== this.own && (await fs.promises.readdir(dir)).every((f) => !f.endsWith('.spool'))) {
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  }

  /** This process's directory and those of dead processes, which it adopts by renaming them. */
  private async ownedDirectories(): Promise<string[]> {
    await fs.promises.mkdir(this.dir, { recursive: true });
    const owned: string[] = [];
    for (const name of (await fs.promises.readdir(this.dir)).sort()) {
      const full = path.join(this.dir, name);
      if (full === this.own) continue;
      const pid = Number.parseInt(name.replace(/^adopted-\d+-/, ''), 10);
      const adoptedByUs = name.startsWith(`adopted-${process.pid}-`);
      if (!adoptedByUs && (Number.isNaN(pid) || isAlive(pid))) continue;
      if (adoptedByUs) {
        owned.push(full);
        continue;
      }
      // Rename is atomic: of two processes adopting at once, one wins.
      const target = path.join(this.dir, `adopted-${process.pid}-${name}`);
      try {
        await fs.promises.rename(full, target);
        owned.push(target);
      } catch {
        // taken by another process
      }
    }
    if (fs.existsSync(this.own)) owned.push(this.own);
    return owned;
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

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
