import { loadMoAmqpOptionsFromEnv } from '../config/mo-amqp-env';
import { brokerUrlsOf } from '../config/mo-amqp-options.schema';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { redactUrl } from '../config/redact';
import { CliIo } from './cli-io';
import { takeEnvFileOption, withEnvFile } from './env-file';
import { delayAgentCommand } from './delay-agent.command';
import { publishCommand } from './publish.command';
import { tailCommand } from './tail.command';
import { outboxCommand } from './outbox.command';
import { dlqCommand } from './dlq.command';
import { spoolCommand } from './spool.command';

export type Command = (args: string[], io: CliIo) => Promise<number>;

export const USAGE = `Usage: mo-amqp <command> [options]

OS2mo AMQP events from the command line. Reads ENABLE_AMQP's companions from the
environment and from .env in the working directory (or --env-file PATH), the
environment winning, as ConfigModule.forRoot() does (Node 20 reads --env-file
itself too, and stops when the file is missing): AMQP__URL (or AMQP__HOST and
AMQP__PORT), AMQP__EXCHANGE, AMQP__TIME_ZONE, …;
for amqps:// also AMQP__TLS_CA_FILE, AMQP__TLS_CERT_FILE, AMQP__TLS_KEY_FILE, AMQP__AUTH, …

Commands:
  tail [--exchange NAME] [--binding KEY]     print [routing_key] body for every message
  publish <routing-key> <uuid> [--time ISO] [--object-uuid UUID]
                                             publish one event and wait for the confirm;
                                             a one-word key (engagement): an AMQP-subsystem message
  delay-agent                                republish every legacy event on the delayed exchange
                                             once its time is due (runs until Ctrl-C)
  outbox <migrate|status|sql>                the PostgreSQL outbox table (AMQP__OUTBOX_URL)
  dlq <list|show|requeue|purge> <queue>      a consumer's dead-letter queue (<queue>.dlq)
  spool <status|resend> [--dir PATH]         the spool directory (AMQP__SPOOL_DIR) and its refused/

Run "mo-amqp <command> --help" for a command's options.
Exit codes: 0 done, 1 the broker failed (unreachable, refused), 2 bad arguments or configuration,
130 dlq requeue or spool resend stopped by Ctrl-C (what was confirmed is done; the rest stays).`;

const COMMANDS: Record<string, Command> = {
  tail: tailCommand,
  publish: publishCommand,
  'delay-agent': delayAgentCommand,
  outbox: outboxCommand,
  dlq: dlqCommand,
  spool: spoolCommand,
};

/** Runs one command line and returns the exit code. */
export async function runCli(argv: string[], io: CliIo = processIo(), cwd = process.cwd()): Promise<number> {
  const taken = takeEnvFileOption(argv);
  const [name, ...args] = taken.argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`mo-amqp: unknown command "${name}"; the commands are ${Object.keys(COMMANDS).join(', ')}\n\n${USAGE}`);
    return 2;
  }
  try {
    const { env, source } = withEnvFile(io.env, taken.envFile, cwd);
    // outbox talks to PostgreSQL, spool status to the disk only.
    const broker = name !== 'outbox' && !(name === 'spool' && !args.includes('resend'));
    if (broker && !args.includes('--help') && !args.includes('-h')) sayBroker(name, env, source, io);
    return await command(args, { ...io, env });
  } catch (err) {
    if (err instanceof MoAmqpConfigError) {
      io.err(`mo-amqp ${name}: ${err.message}`);
      return 2;
    }
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`mo-amqp ${name}: ${err.message}; see "mo-amqp ${name} --help"`);
      return 2;
    }
    throw err;
  }
}

/** Which broker the command talks to, and where its settings came from (password masked). */
function sayBroker(name: string, env: NodeJS.ProcessEnv, source: string | undefined, io: CliIo): void {
  let urls: string[];
  try {
    urls = brokerUrlsOf(loadMoAmqpOptionsFromEnv(env));
  } catch {
    return; // the command says what is wrong with the configuration
  }
  const from = source ? `the environment and ${source}` : 'the environment';
  io.err(`mo-amqp ${name}: RabbitMQ at ${urls.map(redactUrl).join(', ')} (settings from ${from})`);
}

function processIo(): CliIo {
  return {
    env: process.env,
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    stopped: new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    }),
  };
}
