import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { messageOf } from '../util/error-message';

/** The command line without its `--env-file PATH` (or `--env-file=PATH`), and that path. */
export function takeEnvFileOption(argv: readonly string[]): { argv: string[]; envFile: string | undefined } {
  const rest: string[] = [];
  let envFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--env-file') {
      envFile = argv[++i] ?? '';
    } else if (arg.startsWith('--env-file=')) {
      envFile = arg.slice('--env-file='.length);
    } else {
      rest.push(arg);
    }
  }
  return { argv: rest, envFile };
}

/**
 * The environment a command reads, as `ConfigModule.forRoot()` builds it: the
 * variables of `.env` in the working directory (or of `envFile`), with the
 * process's own winning. A missing `.env` is no error; a missing `envFile` is.
 * `source` names the file read, if any.
 */
export function withEnvFile(
  processEnv: NodeJS.ProcessEnv,
  envFile: string | undefined,
  cwd: string,
): { env: NodeJS.ProcessEnv; source: string | undefined } {
  const path = resolve(cwd, envFile ?? '.env');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (envFile === undefined && (err as NodeJS.ErrnoException).code === 'ENOENT') {
      return { env: processEnv, source: undefined };
    }
    throw new MoAmqpConfigError([
      {
        name: '--env-file',
        received: JSON.stringify(envFile ?? path),
        allowed: `a file this process can read (${messageOf(err)})`,
      },
    ]);
  }
  return { env: { ...parseEnv(text), ...processEnv }, source: path };
}
