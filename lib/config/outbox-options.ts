import { MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { describeValue } from '../util/describe-value';
import { BOOLEAN, textRule } from './amqp-rules';
import type { ResolvedMoAmqpOptions } from './mo-amqp-options.interface';
import { optionTable } from './option-table';

/** A lower-case SQL identifier PostgreSQL keeps as written (63 bytes at most), optionally after a schema. */
export const OUTBOX_TABLE = /^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$/;

/** A postgres:// or postgresql:// URL with a host. */
export function isPostgresUrl(value: unknown): boolean {
  if (typeof value !== 'string' || !/^postgres(ql)?:\/\//i.test(value)) return false;
  try {
    return new URL(value).hostname !== '';
  } catch {
    return false;
  }
}

/** A postgres URL as it may be shown: the password masked; a URL that does not parse, all but its scheme. */
export function redactPostgresUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    // node-postgres also takes the password as a parameter (?password=…).
    if (url.searchParams.has('password')) url.searchParams.set('password', '***');
    return url.toString();
  } catch {
    const scheme = value.indexOf('://');
    return scheme < 0 ? '***' : `${value.slice(0, scheme + 3)}***`;
  }
}

/** The password of the outbox URL, decoded and as written, to mask wherever text leaves the library. */
export function outboxSecrets(options: Pick<MoAmqpOutboxOptions, 'outboxUrl'>): string[] {
  if (!options.outboxUrl) return [];
  try {
    const url = new URL(options.outboxUrl);
    const raw = url.password;
    const secrets = raw ? [raw, decodeURIComponent(raw)] : [];
    for (const param of url.searchParams.getAll('password')) if (param) secrets.push(param, encodeURIComponent(param));
    return secrets;
  } catch {
    return [];
  }
}

/** The outbox's part of the module's option table (`MO_AMQP_FIELDS`). */
export const OUTBOX_FIELDS = optionTable({
  outbox: {
    env: 'AMQP__OUTBOX',
    kind: 'enum',
    rule: {
      values: ['off', 'postgres'],
      allowed: 'off, or postgres (events produced in a transaction are written to a table in it)',
    },
    default: 'off',
    doc: 'Where an event produced inside a transaction of `@nestjs-cls/transactional` goes',
  },
  outboxUrl: {
    env: 'AMQP__OUTBOX_URL',
    kind: 'string',
    rule: { test: isPostgresUrl, allowed: 'a postgres:// URL such as postgres://user:password@host:5432/database' },
    default: undefined,
    doc: '`postgres://user:password@host:5432/database` of the outbox table',
  },
  outboxTable: {
    env: 'AMQP__OUTBOX_TABLE',
    kind: 'string',
    rule: {
      pattern: OUTBOX_TABLE,
      allowed: 'a lower-case SQL name (letters, digits, _; at most 63), optionally schema.name',
    },
    default: 'mo_amqp_outbox',
    doc: 'The outbox table (`name` or `schema.name`).',
  },
  outboxRelay: {
    env: 'AMQP__OUTBOX_RELAY',
    kind: 'bool',
    rule: BOOLEAN,
    default: true,
    doc: 'Whether this process relays committed rows to RabbitMQ.',
  },
  outboxConnection: {
    env: 'AMQP__OUTBOX_CONNECTION',
    kind: 'string',
    rule: textRule('the connectionName of a @nestjs-cls/transactional plugin'),
    default: undefined,
    doc: 'The `connectionName` of the `@nestjs-cls/transactional` plugin whose transactions hold the rows',
  },
});

/** The options of the PostgreSQL outbox. */
export type OutboxKey = keyof typeof OUTBOX_FIELDS;

export type MoAmqpOutboxOptions = Pick<ResolvedMoAmqpOptions, OutboxKey>;

/** Combinations the outbox cannot work in. `nameOf` names a field as the user set it. */
export function outboxProblems(
  options: Partial<MoAmqpOutboxOptions>,
  nameOf: (key: OutboxKey) => string,
): MoAmqpConfigProblem[] {
  if (options.outbox !== 'postgres') return [];
  if (options.outboxUrl !== undefined) return [];
  return [
    {
      name: nameOf('outboxUrl'),
      received: describeValue(undefined),
      allowed: `${OUTBOX_FIELDS.outboxUrl.rule.allowed}, required when ${nameOf('outbox')} is postgres (the relay and the table check use it)`,
    },
  ];
}
