import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { takeEnvFileOption, withEnvFile } from '../../lib/cli/env-file';
import { MoAmqpConfigError } from '../../lib/errors/mo-amqp-config.error';

let cwd: string;

beforeEach(() => {
  cwd = fs.mkdtempSync(join(tmpdir(), 'env-file-'));
});

afterEach(() => {
  fs.rmSync(cwd, { recursive: true, force: true });
});

describe('takeEnvFileOption', () => {
  it.each([
    [['--env-file', 'a.env', 'tail'], ['tail'], 'a.env'],
    [['publish', 'k', 'u', '--env-file=b.env'], ['publish', 'k', 'u'], 'b.env'],
    [['tail', '--exchange', 'x'], ['tail', '--exchange', 'x'], undefined],
  ])('%j -> %j, %s', (argv, rest, envFile) => {
    expect(takeEnvFileOption(argv)).toEqual({ argv: rest, envFile });
  });
});

describe('withEnvFile', () => {
  it('reads .env of the working directory, the process environment winning, as ConfigModule does', () => {
    fs.writeFileSync(join(cwd, '.env'), '# comment\nAMQP__EXCHANGE=from-file\nAMQP__URL="amqp://file:5672"\n');
    const { env, source } = withEnvFile({ AMQP__EXCHANGE: 'from-process' }, undefined, cwd);
    expect(env).toMatchObject({ AMQP__EXCHANGE: 'from-process', AMQP__URL: 'amqp://file:5672' });
    expect(source).toBe(join(cwd, '.env'));
  });

  it('runs without a .env, and refuses an --env-file it cannot read, naming it', () => {
    expect(withEnvFile({ A: '1' }, undefined, cwd)).toEqual({ env: { A: '1' }, source: undefined });
    expect(() => withEnvFile({}, 'nope.env', cwd)).toThrow(MoAmqpConfigError);
    expect(() => withEnvFile({}, 'nope.env', cwd)).toThrow(
      '--env-file: received "nope.env"; allowed: a file this process can read (ENOENT',
    );
  });
});
