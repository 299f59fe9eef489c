import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';

/** Who holds a spool directory: written to `<dir>/owner.json`, its mtime the holder's heartbeat. */
interface Owner {
  host: string;
  pid: number;
  /** The process's start time in clock ticks since boot (Linux), so a reused pid is told apart; else null. */
  start: string | null;
}

export const OWNER_FILE = 'owner.json';
/** What spools name their directories: `<pid>-<random>`, and `adopted-<random>` once adopted. */
const SPOOL_DIRECTORY = /^(\d+-[0-9A-Za-z]+|adopted-[0-9a-f]+)$/;
/** A directory whose holder cannot be checked directly is taken as abandoned once its owner file is this old. */
export const SPOOL_LEASE_MS = 15_000;

/** Writes this process's owner file into `dir` atomically (a whole file or none; a rename replaces it). */
export async function writeOwner(dir: string): Promise<void> {
  const owner: Owner = { host: hostname(), pid: process.pid, start: startOf(process.pid) };
  const file = path.join(dir, OWNER_FILE);
  const temporary = `${file}.${process.pid}.tmp`;
  await fs.promises.writeFile(temporary, JSON.stringify(owner));
  await fs.promises.rename(temporary, file);
}

/** Touches the owner file (the heartbeat); writes it again when it went missing. */
export async function touchOwner(dir: string): Promise<void> {
  const now = new Date();
  await fs.promises.utimes(path.join(dir, OWNER_FILE), now, now).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') await writeOwner(dir);
  });
}

/**
 * True when the directory's holder is known to be gone (so it may be adopted).
 * `heldHere` tells whether a spool of this process holds it.
 */
export async function isAbandoned(dir: string, heldHere: boolean): Promise<boolean> {
  const file = path.join(dir, OWNER_FILE);
  const owner = await readOwner(file);
  if (owner === undefined) {
    // No readable owner file: one being written now, or one a process left half
    // written when it died, or one from before owner files. Given a lease from
    // the last change to the directory or to the file; then, a directory named
    // by its pid is checked by that pid, any other is abandoned.
    // Only the names spools give their directories: anything else in the spool
    // directory (lost+found on a volume, an operator's files) is not a spool's.
    const name = path.basename(dir);
    if (!SPOOL_DIRECTORY.test(name)) return false;
    const since = Math.max(await mtimeOf(dir), await mtimeOf(file));
    if (Date.now() - since < SPOOL_LEASE_MS) return false;
    const pid = /^\d+-/.test(name) ? Number.parseInt(name, 10) : undefined;
    return pid === undefined || !(pid !== process.pid && isRunning(pid));
  }
  if (owner.host !== hostname()) return Date.now() - (await mtimeOf(file)) > SPOOL_LEASE_MS;
  if (owner.pid === process.pid && owner.start === startOf(process.pid)) return !heldHere;
  if (owner.start !== null) return startOf(owner.pid) !== owner.start;
  return !isRunning(owner.pid);
}

/** The owner file's content, or undefined when it is missing, empty or not an owner. */
async function readOwner(file: string): Promise<Owner | undefined> {
  try {
    const parsed = JSON.parse(await fs.promises.readFile(file, 'utf8')) as Partial<Owner> | null;
    if (
      parsed !== null &&
      typeof parsed === 'object' &&
      typeof parsed.host === 'string' &&
      Number.isInteger(parsed.pid) &&
      (parsed.start === null || typeof parsed.start === 'string')
    ) {
      return parsed as Owner;
    }
  } catch {
    // missing, unreadable or not JSON: as good as none
  }
  return undefined;
}

async function mtimeOf(file: string): Promise<number> {
  return fs.promises.stat(file).then(
    (st) => st.mtimeMs,
    () => 0,
  );
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
