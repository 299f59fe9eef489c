import * as fs from 'node:fs';
import * as path from 'node:path';

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

/** Writes `bytes` as the whole of `file` and fsyncs it before resolving. */
export async function writeSynced(file: string, bytes: Buffer): Promise<void> {
  const handle = await fs.promises.open(file, 'w');
  try {
    await handle.write(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
