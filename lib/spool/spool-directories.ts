import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeDirectory } from './spool-fs';
import { OWNER_FILE, SPOOL_LEASE_MS, isAbandoned, touchOwner, writeOwner } from './spool-owner';
import { countRecords } from './spool-record';

const SEGMENT_FILE = /^\d+\.spool$/;

/** Where records the broker refuses for good are set aside, never sent again by the spool. */
export const REFUSED_DIR = 'refused';
/** Where what cannot be read as records is set aside: damaged bytes, stray entries. */
export const DAMAGED_DIR = 'damaged';
const HEARTBEAT_MS = SPOOL_LEASE_MS / 3;

/** Directories held by the open spools of this process. */
const heldHere = new Set<string>();

/** What a segment on disk holds, as far as this process knows. */
export interface SegmentInfo {
  bytes: number;
  records: number;
  oldest: number | undefined;
}

/**
 * The directories of one `DiskSpool`: its own (`<dir>/<pid>-<random>`), created
 * with its first segment, and those it adopts from processes that are gone.
 * It holds each (`owner.json`, touched while open), lists the segments in them,
 * sets aside entries that are no segment, and deletes a directory once nothing
 * in it is left to send.
 */
export class SpoolDirectories {
  /** The spool's own directory, for the segments it writes. */
  readonly own: string;
  /** Directories this spool holds: its own, once created, and adopted ones. */
  private readonly held = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** One directory scan at a time: two at once would race to adopt and set aside the same entries. */
  private scanning: Promise<unknown> = Promise.resolve();

  /**
   * `segments` is the spool's account of the segments on disk, kept up to date
   * as segments are found and directories forgotten; `writing` names the segment
   * appends go to, which is never listed.
   */
  constructor(
    private readonly dir: string,
    private readonly segments: Map<string, SegmentInfo>,
    private readonly writing: () => string | undefined,
    private readonly report: (message: string) => void,
  ) {
    this.own = path.join(dir, `${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  /**
   * Stops the heartbeat and leaves what is held to other spools of this process;
   * deletes the own directory when nothing in it is left to send.
   */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const dir of this.held) heldHere.delete(dir);
    // Nothing left to send: no directory is left behind either.
    const left = await fs.promises.readdir(this.own).catch(() => undefined);
    if (left && left.every((f) => !f.endsWith('.spool'))) await this.release(this.own);
  }

  /** Creates the own directory, and holds it unless this process does already. */
  async holdOwn(): Promise<void> {
    await makeDirectory(this.own);
    if (!heldHere.has(this.own)) await this.hold(this.own); // first segment, or the first after close()
  }

  /** The segments in the directories this spool holds, after adopting those whose holder is gone. */
  listSegments(): Promise<string[]> {
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
        if (file === this.writing()) continue;
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

  /** Where in `damaged/` an entry named `name` is set aside. */
  damagedName(name: string): string {
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
  async release(dir: string): Promise<void> {
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
}
