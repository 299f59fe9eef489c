// Each test file runs in a fresh temporary working directory, so apps booted
// without a spoolDir (the default, .mo-amqp-spool in the working directory) never
// share a spool with another file or adopt what an earlier run left behind. The
// temporary directories tests make (testSpoolDir, the fault suite's) live inside
// it, and it is deleted when the file's tests are done.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const home = process.cwd();
const dir = mkdtempSync(join(tmpdir(), 'mo-amqp-test-cwd-'));
process.chdir(dir);

afterAll(() => {
  process.chdir(home);
  rmSync(dir, { recursive: true, force: true });
});
