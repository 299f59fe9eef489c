import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');

describe('MoVocabularyRegister', () => {
  it('narrows publish() and @MoEvent to the registered vocabulary at compile time', async () => {
    // The fixture registers os2mo, uses its words, and marks each seed word @ts-expect-error:
    // were the register to stop narrowing, those marks would be unused and tsc would fail.
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const config = join(ROOT, 'test', 'fixtures', 'vocabulary-register', 'tsconfig.json');
    const result = await run(process.execPath, [tsc, '-p', config], { cwd: ROOT }).then(
      () => 'compiled',
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    expect(result).toBe('compiled');
  }, 60_000);
});
