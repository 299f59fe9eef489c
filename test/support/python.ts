import { execFile } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Debian's python3: with python3-pika, python3-pydantic (ramqp's pydantic 1) and the zone database. */
export const DEBIAN_PYTHON = '/usr/bin/python3';

/** The peers' scripts. */
export const PEERS = join(__dirname, '..', 'peers', 'python');

export interface Python {
  readonly path: string;
  /** [major, minor] */
  readonly version: readonly [number, number];
}

/**
 * Every Python 3 on the machine that has `datetime.fromisoformat` (3.7+): pyenv's
 * versions and Debian's, oldest first. (3.6, if there, has no fromisoformat.)
 */
export function fromIsoformatPythons(): Python[] {
  const found: Python[] = [];
  const root = process.env.PYENV_ROOT || join(homedir(), '.pyenv');
  const versions = existsSync(join(root, 'versions')) ? readdirSync(join(root, 'versions')) : [];
  for (const name of versions) {
    const m = /^3\.(\d+)\.\d+$/.exec(name);
    const path = join(root, 'versions', name, 'bin', 'python3');
    if (m && +m[1] >= 7 && existsSync(path)) found.push({ path, version: [3, +m[1]] });
  }
  if (existsSync(DEBIAN_PYTHON)) found.push({ path: DEBIAN_PYTHON, version: [3, debianMinor()] });
  return found.sort((a, b) => a.version[1] - b.version[1]);
}

function debianMinor(): number {
  const m = /python3\.(\d+)/.exec(realpathSync(DEBIAN_PYTHON));
  return m ? +m[1] : 11;
}

/** Runs a peer script with `input` as JSON on stdin; resolves with its JSON answer. */
export function runPeer<T>(python: string, script: string, args: string[], input: unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = execFile(
      python,
      [join(PEERS, script), ...args],
      { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${python} ${script} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as T);
      },
    );
    child.stdin?.end(JSON.stringify(input));
  });
}
