// Each Jest worker runs in a fresh temporary working directory, so apps booted
// without a spoolDir (the default, .mo-amqp-spool in the working directory) never
// share a spool with another worker or adopt what an earlier run left behind.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

process.chdir(mkdtempSync(join(tmpdir(), 'mo-amqp-test-cwd-')));
