import { parseArgs } from 'node:util';
import { loadMoAmqpOptionsFromEnv } from '../config/mo-amqp-env';
import { OUTBOX_FIELDS, outboxSecrets, redactPostgresUrl } from '../config/outbox-options';
import { redactSecrets } from '../config/redact';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { backlogSql, outboxMigrationSql } from '../outbox/outbox-sql';
import { loadPg, migrateOutboxTable } from '../outbox/outbox-table';
import { messageOf } from '../util/error-message';
import { explainPostgresRefusal } from '../outbox/outbox-check';
import { CliIo } from './cli-io';

const HELP = `Usage: mo-amqp outbox <migrate|status|sql>

The PostgreSQL outbox (AMQP__OUTBOX=postgres; see docs/outbox.md). Reads
AMQP__OUTBOX_URL and AMQP__OUTBOX_TABLE (default mo_amqp_outbox).

  migrate   create the outbox table and its trigger (idempotent; safe to run
            from several replicas at once)
  status    how many rows wait to be relayed, and since when
  sql       print the migration's SQL, for your own migration tool

Options:
  -h, --help   this text

Exit codes: 0 done, 1 PostgreSQL failed (unreachable, refused), 2 bad arguments or configuration.`;

/** `mo-amqp outbox migrate|status|sql`. */
export async function outboxCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const [action, ...rest] = positionals;
  if (!['migrate', 'status', 'sql'].includes(action ?? '') || rest.length > 0) {
    io.err(
      `mo-amqp outbox: expected one of migrate, status, sql; got ${JSON.stringify(positionals.join(' '))}\n\n${HELP}`,
    );
    return 2;
  }
  const options = loadMoAmqpOptionsFromEnv(io.env);
  if (action === 'sql') {
    io.out(outboxMigrationSql(options.outboxTable));
    return 0;
  }
  if (options.outboxUrl === undefined) {
    throw new MoAmqpConfigError([
      { name: OUTBOX_FIELDS.outboxUrl.env, received: 'undefined', allowed: OUTBOX_FIELDS.outboxUrl.rule.allowed },
    ]);
  }
  const where = `PostgreSQL at ${redactPostgresUrl(options.outboxUrl)}`;
  const redact = (err: unknown) => redactSecrets(messageOf(err), outboxSecrets(options));
  try {
    if (action === 'migrate') {
      await migrateOutboxTable(options);
      io.out(`mo-amqp outbox: table ${options.outboxTable} is ready at ${where}`);
      return 0;
    }
    const { Client } = loadPg();
    const client = new Client({ connectionString: options.outboxUrl, connectionTimeoutMillis: 5_000 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const { rows } = await client.query<{ rows: string; oldest: Date | null }>(backlogSql(options.outboxTable));
      const oldest = rows[0]?.oldest;
      const age = oldest ? `, the oldest written ${Math.round((Date.now() - oldest.getTime()) / 1000)} s ago` : '';
      io.out(`${options.outboxTable}: ${rows[0]?.rows ?? 0} row(s) wait to be relayed${age}`);
    } finally {
      await client.end().catch(() => undefined);
    }
    return 0;
  } catch (err) {
    if (err instanceof MoAmqpConfigError) throw err;
    // A refused login, an unknown database: said with its fix, as start-up says it.
    const refusal = explainPostgresRefusal(err, redact(err), options);
    io.err(`mo-amqp outbox ${action}: ${refusal ? refusal.message : `${where} failed: ${redact(err)}`}`);
    return 1;
  }
}
