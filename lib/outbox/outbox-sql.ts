import { OUTBOX_FIELDS, OUTBOX_TABLE } from '../config/outbox-options';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { describeValue } from '../util/describe-value';

/**
 * The outbox table and every statement on it. The table name comes from
 * validated configuration (`OUTBOX_TABLE`: lower-case letters, digits and `_`,
 * optionally `schema.name`), and is quoted all the same; everything else is a
 * parameter.
 */

/** The version of the table layout the code reads and writes, kept in the table's comment. */
export const OUTBOX_LAYOUT = 'nestjs-mo-amqp outbox v1';

/** The columns the relay reads, in order. */
const COLUMNS = 'id, message_id, exchange, routing_key, body, headers, published_at';

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}

/** `schema.name` or `name`, each part quoted. */
export function quotedTable(table: string): string {
  return table.split('.').map(quote).join('.');
}

/** The NOTIFY channel the insert trigger signals: the table's own name, so two outboxes do not wake each other. */
export function notifyChannel(table: string): string {
  return table;
}

/** The trigger function's name, beside the table. */
function notifyFunction(table: string): string {
  const parts = table.split('.');
  parts[parts.length - 1] = `${parts[parts.length - 1]}_notify`.slice(0, 63);
  return parts.map(quote).join('.');
}

/**
 * The SQL that creates the outbox table (`AMQP__OUTBOX_TABLE`, default
 * `mo_amqp_outbox`), the trigger that wakes relays at commit, and the layout
 * comment start-up checks. Idempotent. Run it with `npx mo-amqp outbox
 * migrate`, or put it into a migration of your own tool:
 *
 * ```ts
 * await queryRunner.query(outboxMigrationSql('mo_amqp_outbox'));
 * ```
 *
 * Throws `MoAmqpConfigError` for a name that is not a lower-case SQL name.
 */
export function outboxMigrationSql(table = 'mo_amqp_outbox'): string {
  if (typeof table !== 'string' || !OUTBOX_TABLE.test(table)) {
    throw new MoAmqpConfigError([
      {
        name: 'outboxMigrationSql(table)',
        received: describeValue(table),
        allowed: OUTBOX_FIELDS.outboxTable.rule.allowed,
      },
    ]);
  }
  const t = quotedTable(table);
  const fn = notifyFunction(table);
  const trigger = quote(`${table.split('.').pop()}_notify`.slice(0, 63));
  const channel = notifyChannel(table).replace(/'/g, "''");
  return `CREATE TABLE IF NOT EXISTS ${t} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id uuid NOT NULL,
  exchange text NOT NULL,
  routing_key text NOT NULL,
  body text NOT NULL,
  headers jsonb,
  published_at bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE ${t} IS '${OUTBOX_LAYOUT}';
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('${channel}', '');
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS ${trigger} ON ${t};
CREATE TRIGGER ${trigger} AFTER INSERT ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}();
`;
}

/**
 * `rows` events in one statement, in order; parameters per row: message_id, exchange,
 * routing_key, body, headers (JSON text or null), published_at.
 */
export function insertSql(table: string, rows = 1): string {
  const values = Array.from({ length: rows }, (_, r) => {
    const n = r * 6;
    return `($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, $${n + 6})`;
  });
  return `INSERT INTO ${quotedTable(table)} (message_id, exchange, routing_key, body, headers, published_at) VALUES ${values.join(', ')}`;
}

/** Checks the table exists with the columns the relay reads (fails with 42P01 or 42703 otherwise). */
export function checkSql(table: string): string {
  return `SELECT ${COLUMNS} FROM ${quotedTable(table)} LIMIT 0`;
}

/** The layout comment: `SELECT` it alone, as `checkSql` returns no row. */
export function layoutSql(table: string): string {
  return `SELECT obj_description(${quotedLiteral(quotedTable(table))}::regclass, 'pg_class') AS layout`;
}

function quotedLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** Only one relay publishes at a time, for the length of its batch transaction; `$1` is the table name. */
export const LEADER_SQL = 'SELECT pg_try_advisory_xact_lock(hashtext($1)) AS leader';

/** The oldest committed rows after id `$1` (from the start: 0), in the order they were written; `$2` is the batch size. */
export function batchSql(table: string): string {
  return `SELECT ${COLUMNS} FROM ${quotedTable(table)} WHERE id > $1 ORDER BY id LIMIT $2`;
}

/** Removes confirmed rows; `$1` is an array of ids. */
export function deleteSql(table: string): string {
  return `DELETE FROM ${quotedTable(table)} WHERE id = ANY($1::bigint[])`;
}

/** How many rows wait, and since when: for `status` and the health indicator. */
export function backlogSql(table: string): string {
  return `SELECT count(*)::bigint AS rows, min(created_at) AS oldest FROM ${quotedTable(table)}`;
}

/** One row as the relay reads it. */
export interface OutboxRow {
  id: string;
  message_id: string;
  exchange: string;
  routing_key: string;
  body: string;
  headers: Record<string, unknown> | null;
  published_at: string;
}
