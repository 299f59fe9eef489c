import { MoAmqpOutboxOptions, OUTBOX_FIELDS, redactPostgresUrl } from '../config/outbox-options';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { OUTBOX_LAYOUT, checkSql, layoutSql, notifyChannel, quotedTable } from './outbox-sql';
import { loadPg, withClient } from './outbox-table';

type CheckOptions = Pick<MoAmqpOutboxOptions, 'outboxUrl' | 'outboxTable'>;

/** What this process does with the table: the rights it needs follow. */
export interface OutboxUse {
  /** Writes rows (in the application's transactions): `INSERT`. */
  readonly writes: boolean;
  /** Relays them: `SELECT`, `DELETE` and `LISTEN`. */
  readonly relays: boolean;
}

/** Host, port, database and role of the outbox URL, as PostgreSQL will see them (no password). */
export function postgresTarget(url: string): { at: string; database: string; role: string } {
  try {
    const parsed = new URL(url);
    // Without one in the URL, node-postgres logs in as its default user (the OS user's name).
    const role =
      decodeURIComponent(parsed.username) ||
      parsed.searchParams.get('user') ||
      String(loadPg().defaults.user ?? 'postgres');
    const database = decodeURIComponent(parsed.pathname.slice(1)) || role;
    return { at: `${parsed.hostname}:${parsed.port || '5432'}`, database, role };
  } catch {
    return { at: redactPostgresUrl(url), database: '?', role: '?' };
  }
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function urlProblem(options: CheckOptions, allowed: string): MoAmqpConfigError {
  return new MoAmqpConfigError([
    {
      name: `${OUTBOX_FIELDS.outboxUrl.env} (outboxUrl)`,
      received: `'${redactPostgresUrl(options.outboxUrl ?? '')}'`,
      allowed,
    },
  ]);
}

/**
 * What PostgreSQL's refusal to let this client in means, and the fix: a wrong
 * password, an unknown role or database, a host pg_hba.conf does not admit, no
 * `CONNECT` or a right on the table or its schema, a host name that does not
 * resolve. Waiting changes none of these. Undefined for what may pass (no
 * server yet, a network error, too many connections, a server starting up).
 * `text` is the error's message, passwords already masked.
 */
export function explainPostgresRefusal(
  err: unknown,
  text: string,
  options: CheckOptions,
): MoAmqpConfigError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  const { at, database, role } = postgresTarget(options.outboxUrl ?? '');
  const who = `PostgreSQL at ${at} refused role "${role}" on database "${database}"`;
  const found = (why: string) => urlProblem(options, `a login PostgreSQL accepts: ${who}: ${why} (${text})`);
  if (code === '28P01') {
    return found(
      `the password is wrong, or the role does not exist (PostgreSQL does not say which): check both in AMQP__OUTBOX_URL (percent-encoded), or set it: ALTER ROLE ${ident(role)} PASSWORD '…'`,
    );
  }
  if (code === '28000' && /role .* does not exist/.test(text)) {
    return found(
      `the role does not exist: CREATE ROLE ${ident(role)} LOGIN PASSWORD '…'; GRANT CONNECT ON DATABASE ${ident(database)} TO ${ident(role)}`,
    );
  }
  if (code === '28000' && /pg_hba\.conf/.test(text)) {
    return found(
      `pg_hba.conf admits no such connection from this host: add a line such as "host ${database} ${role} <this host's address>/32 scram-sha-256" and reload PostgreSQL (or use TLS: ?sslmode=require)`,
    );
  }
  if (code === '28000') return found('the login is not allowed');
  if (code === '3D000') {
    return found(
      `the database does not exist: CREATE DATABASE ${ident(database)} OWNER ${ident(role)}, or name another in AMQP__OUTBOX_URL (postgres://user:password@host:5432/database)`,
    );
  }
  if (code === '42501' && /permission denied for database/.test(text)) {
    return found(`the role may not connect to it: GRANT CONNECT ON DATABASE ${ident(database)} TO ${ident(role)}`);
  }
  const schema = code === '42501' && /permission denied for schema (\S+)/.exec(text);
  if (schema)
    return found(
      `the role may not use schema ${schema[1]}: GRANT USAGE ON SCHEMA ${ident(schema[1])} TO ${ident(role)}`,
    );
  if (code === '42501' && /permission denied for (table|relation)/.test(text)) {
    const table = quotedTable(options.outboxTable);
    return found(`a right on the outbox table is missing: GRANT SELECT, INSERT, DELETE ON ${table} TO ${ident(role)}`);
  }
  if (code === 'ENOTFOUND') {
    return urlProblem(options, `a host name that resolves: ${at} does not, so check it in AMQP__OUTBOX_URL (${text})`);
  }
  return undefined;
}

/**
 * Checks, on the outbox URL, that the table exists with the columns and layout
 * this version uses, and that the role has the rights `use` needs. Throws
 * `MoAmqpConfigError` naming the setting, host, database, role and the SQL,
 * `GRANT` or command that fixes it; rejects with the driver's error for a
 * database that cannot be reached (`explainPostgresRefusal` tells the two apart).
 */
export async function checkOutboxTable(
  options: CheckOptions,
  use: OutboxUse,
  redact: (err: unknown) => string,
): Promise<string[]> {
  const warnings: string[] = [];
  const table = options.outboxTable;
  const { at, database, role } = postgresTarget(options.outboxUrl ?? '');
  const where = `in database "${database}" at ${at} (role "${role}")`;
  const problem = (why: string) =>
    new MoAmqpConfigError([
      {
        name: `${OUTBOX_FIELDS.outboxTable.env} (outboxTable)`,
        received: `'${table}'`,
        allowed: `a table made by \`npx mo-amqp outbox migrate\` (or outboxMigrationSql() in your migrations) ${where}: ${why}`,
      },
    ]);
  await withClient(options, async (client) => {
    const standby = await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby');
    if (standby.rows[0]?.standby) {
      throw urlProblem(
        options,
        `the primary server: PostgreSQL at ${at} is a read-only standby, where rows can be neither written nor deleted`,
      );
    }
    try {
      await client.query(checkSql(table));
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === '42P01') throw problem('it does not exist');
      if (code === '42703') throw problem(`a column is missing (${redact(err)})`);
      if (code === '42501')
        throw problem(`this role may not read it: GRANT ${rights(use)} ON ${quotedTable(table)} TO ${ident(role)}`);
      throw err;
    }
    const { rows } = await client.query<{ layout: string | null }>(layoutSql(table));
    if (rows[0]?.layout !== OUTBOX_LAYOUT) {
      throw problem(`its comment says ${JSON.stringify(rows[0]?.layout ?? null)}, not '${OUTBOX_LAYOUT}'`);
    }
    const held = await client.query<Record<string, boolean>>(
      "SELECT has_table_privilege($1, 'INSERT') AS insert, has_table_privilege($1, 'DELETE') AS delete",
      [quotedTable(table)],
    );
    const grant = `GRANT ${rights(use)} ON ${quotedTable(table)} TO ${ident(role)}`;
    if (use.relays && !held.rows[0]?.delete) {
      throw problem(`role "${role}" lacks DELETE on it, and this process relays and deletes the rows: ${grant}`);
    }
    if (use.writes && !held.rows[0]?.insert) {
      // A relaying role may rightly lack INSERT, when the transactions log in as another role.
      const why = `role "${role}" lacks INSERT on it, and this process writes rows`;
      if (!use.relays) throw problem(`${why}: ${grant}`);
      warnings.push(
        `${OUTBOX_FIELDS.outboxUrl.env}: ${why} through your transactions: if they log in as "${role}", they will fail (${grant}); ` +
          'if they log in as another role, that one needs INSERT',
      );
    }
    if (use.relays) {
      const channel = ident(notifyChannel(table));
      try {
        await client.query(`LISTEN ${channel}`);
        await client.query(`UNLISTEN ${channel}`);
      } catch (err) {
        throw urlProblem(
          options,
          `a server where role "${role}" may LISTEN (the relay wakes on commits): ${redact(err)}`,
        );
      }
    }
  });
  return warnings;
}

function rights(use: OutboxUse): string {
  return ['SELECT', use.writes && 'INSERT', use.relays && 'DELETE'].filter(Boolean).join(', ');
}
