import { isFQDN, isIP } from 'class-validator';
import { MoAmqpConfigError, MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { MO_VOCABULARY_NAMES } from '../events/vocabulary';
import { describeValue } from '../util/describe-value';
import { redactUrl } from './redact';
import { BOOLEAN, EXCHANGE_NAME, PORT, isIanaTimeZone, pathRule, wholeNumberFrom, wholeNumberRule } from './amqp-rules';
import { PERCENT_ENCODE_HINT, frameLimitProblem, parseAmqpUrl, splitUrls } from './amqp-url';
import { MoAmqpModuleOptions, ResolvedMoAmqpOptions } from './mo-amqp-options.interface';
import { givenOptions, unknownOptions } from './option-schema';
import {
  Assert,
  FieldNaming,
  OptionsOf,
  ResolvedOptionsOf,
  Same,
  fieldProblems,
  optionTable,
  withDefaults,
} from './option-table';
import { TLS_FIELDS, tlsProblems } from './tls-options';
import { OUTBOX_FIELDS, outboxProblems, redactPostgresUrl } from './outbox-options';

// setTimeout's ceiling; a larger delay fires at once.
const MAX_TIMER_MS = 2_147_483_647;
const TIMEOUT_MS = wholeNumberRule(1, MAX_TIMER_MS, 'milliseconds');
const SHUTDOWN_TIMEOUT_MS = wholeNumberRule(0, MAX_TIMER_MS, 'milliseconds');

function isBrokerHost(value: unknown): boolean {
  return (
    typeof value === 'string' &&
    (isIP(value) || isFQDN(value, { require_tld: false, allow_underscores: true, allow_numeric_tld: true }))
  );
}

/** One amqp:// or amqps:// URL, or several separated by commas (a cluster, tried in turn). */
function isAmqpUrlList(value: unknown): boolean {
  return typeof value === 'string' && splitUrls(value).every((url) => parseAmqpUrl(url) !== undefined);
}

/**
 * @internal Every option of `MoAmqpModule`, in the order errors list them: its variable,
 * kind, rule, default and a line of doc (`OptionSpec`). README.md's table of
 * variables lists each (test/unit/env-table.spec.ts).
 */
export const MO_AMQP_FIELDS = optionTable({
  enabled: {
    env: 'ENABLE_AMQP',
    kind: 'bool',
    rule: BOOLEAN,
    default: false,
    doc: 'Off by default: nothing connects and `publish()` reports `disabled`.',
  },
  exchange: {
    env: 'AMQP__EXCHANGE',
    kind: 'string',
    rule: EXCHANGE_NAME,
    default: 'os2mo',
    doc: 'The topic exchange events go to.',
  },
  delayedExchange: {
    env: 'AMQP__DELAYED_EXCHANGE',
    kind: 'string',
    rule: EXCHANGE_NAME,
    default: 'os2mo_delayed',
    doc: 'The topic exchange the delay agent republishes due events on.',
  },
  exchangeDurable: {
    env: 'AMQP__EXCHANGE_DURABLE',
    kind: 'bool',
    rule: BOOLEAN,
    default: true,
    doc: 'The durability both exchanges are declared with.',
  },
  declareExchanges: {
    env: 'AMQP__DECLARE_EXCHANGES',
    kind: 'bool',
    rule: BOOLEAN,
    default: true,
    doc: 'Whether the exchanges are declared at start, or only checked.',
  },
  vocabulary: {
    env: 'AMQP__VOCABULARY',
    kind: 'enum',
    rule: { values: MO_VOCABULARY_NAMES, allowed: MO_VOCABULARY_NAMES.join(' or ') },
    default: 'seed',
    doc: 'The words `publish()` and `@MoEvent` accept',
  },
  host: {
    env: 'AMQP__HOST',
    kind: 'string',
    rule: { test: isBrokerHost, allowed: 'a host name or IP address' },
    default: 'localhost',
    doc: 'Broker host, default `localhost`; ignored when `url` is given.',
  },
  port: {
    env: 'AMQP__PORT',
    kind: 'int',
    rule: PORT,
    default: 5672,
    doc: 'Broker port, default 5672; ignored when `url` is given.',
  },
  url: {
    env: 'AMQP__URL',
    kind: 'string',
    rule: {
      test: isAmqpUrlList,
      allowed:
        'an amqp:// or amqps:// URL such as amqp://user:password@host:5672/vhost, or several separated by commas (a cluster)',
    },
    default: undefined,
    doc: '`amqp://user:password@host:port/vhost` or `amqps://…`; wins over host and port.',
  },
  timeZone: {
    env: 'AMQP__TIME_ZONE',
    kind: 'string',
    rule: { test: isIanaTimeZone, allowed: 'an IANA time zone such as UTC or Europe/Copenhagen' },
    default: 'UTC',
    doc: 'IANA zone in which a `Date` is written and a naive time is read.',
  },
  publishTimeoutMs: {
    env: 'AMQP__PUBLISH_TIMEOUT_MS',
    kind: 'int',
    rule: TIMEOUT_MS,
    default: 10_000,
    doc: "How long a publish may wait for the broker's confirm.",
  },
  connectTimeoutMs: {
    env: 'AMQP__CONNECT_TIMEOUT_MS',
    kind: 'int',
    rule: TIMEOUT_MS,
    default: 10_000,
    doc: 'How long start-up may wait for the broker.',
  },
  startWithoutBroker: {
    env: 'AMQP__START_WITHOUT_BROKER',
    kind: 'enum',
    rule: {
      values: ['auto', 'true', 'false'],
      allowed:
        'auto (start while RabbitMQ is unreachable when the spool or the outbox holds the events), true (always) or false (wait for it, and fail after the connect timeout)',
    },
    default: 'auto',
    doc: 'Whether start-up goes on while RabbitMQ is unreachable',
  },
  maxInFlight: {
    env: 'AMQP__MAX_IN_FLIGHT',
    kind: 'int',
    rule: wholeNumberFrom(1),
    default: 10_000,
    doc: 'Publishes waiting for a confirm at once',
  },
  eventFailures: {
    env: 'AMQP__EVENT_FAILURES',
    kind: 'enum',
    rule: { values: ['log', 'throw'], allowed: 'log or throw' },
    default: 'log',
    doc: 'When an `@MoEvent` method has resolved but its event cannot be published',
  },
  spoolDir: {
    env: 'AMQP__SPOOL_DIR',
    kind: 'string',
    rule: pathRule('a directory path, or off'),
    default: '.mo-amqp-spool',
    doc: 'Directory of the durable spool',
  },
  spoolMaxBytes: {
    env: 'AMQP__SPOOL_MAX_BYTES',
    kind: 'int',
    rule: wholeNumberFrom(1024, 'bytes'),
    default: 100 * 1024 * 1024,
    doc: "The spool's limit; beyond it `publish()` fails with reason `spool-full`.",
  },
  shutdownTimeoutMs: {
    env: 'AMQP__SHUTDOWN_TIMEOUT_MS',
    kind: 'int',
    rule: SHUTDOWN_TIMEOUT_MS,
    default: 5_000,
    doc: 'Bounds shutdown',
  },
  ...TLS_FIELDS,
  ...OUTBOX_FIELDS,
});

// The public types are written out, so their .d.ts reads as documented options; these
// stop the build when one drifts from the table (a key, a type, or a default, added or dropped).
type _OptionsMatchTable = Assert<Same<MoAmqpModuleOptions, OptionsOf<typeof MO_AMQP_FIELDS>>>;
type _ResolvedMatchesTable = Assert<Same<ResolvedMoAmqpOptions, ResolvedOptionsOf<typeof MO_AMQP_FIELDS>>>;

type OptionKey = keyof MoAmqpModuleOptions;

const OPTION_KEYS = Object.keys(MO_AMQP_FIELDS) as OptionKey[];

/** What a field allows; for a URL that looks like one but breaks the grammar, how to write it. */
export function allowedFor(key: OptionKey, value: unknown): string {
  if (key === 'url' && typeof value === 'string' && /^amqps?:\/\//i.test(value.trim())) {
    return `${MO_AMQP_FIELDS.url.rule.allowed}; ${PERCENT_ENCODE_HINT}`;
  }
  return MO_AMQP_FIELDS[key].rule.allowed;
}

export function showReceived(key: string, value: unknown): string {
  if (key === 'tlsKeyPassphrase') return '***'; // a secret, never shown
  if (typeof value === 'string' && key === 'url') return describeValue(redactUrl(value));
  if (typeof value === 'string' && key === 'outboxUrl') return describeValue(redactPostgresUrl(value));
  return describeValue(value);
}

/**
 * Applies defaults and validates. Throws one `MoAmqpConfigError` listing every
 * bad value (and, for `forRoot()`, every unknown option name).
 */
export function resolveMoAmqpOptions(
  options: MoAmqpModuleOptions | undefined,
  naming: FieldNaming = 'option',
  earlierProblems: readonly MoAmqpConfigProblem[] = [],
): ResolvedMoAmqpOptions {
  const problems = [...earlierProblems];
  const given = givenOptions(options, 'MoAmqpModule options');
  problems.push(...unknownOptions(given, OPTION_KEYS));
  const merged: Record<string, unknown> = withDefaults(MO_AMQP_FIELDS, given);
  const checked = fieldProblems(MO_AMQP_FIELDS, merged, naming, {
    received: showReceived,
    allowed: allowedFor,
  });
  problems.push(...checked.problems);
  const { failed } = checked;
  const nameOf = (key: OptionKey) => (naming === 'env' ? MO_AMQP_FIELDS[key].env : key);
  if (!failed.has('url') && typeof merged.url === 'string') {
    for (const url of splitUrls(merged.url)) {
      const allowed = frameLimitProblem(url);
      if (allowed) problems.push({ name: nameOf('url'), received: describeValue(redactUrl(url)), allowed });
    }
  }
  if (!failed.has('exchange') && !failed.has('delayedExchange') && merged.exchange === merged.delayedExchange) {
    problems.push({
      name: nameOf('delayedExchange'),
      received: describeValue(merged.delayedExchange),
      allowed: `a name other than ${nameOf('exchange')}'s: the delay agent would republish every event into its own input, for ever`,
    });
  }
  if (!(['url', ...Object.keys(TLS_FIELDS)] as OptionKey[]).some((key) => failed.has(key))) {
    problems.push(...tlsProblems(merged, nameOf));
  }
  if (!failed.has('outbox') && !failed.has('outboxUrl')) {
    problems.push(...outboxProblems(merged, nameOf));
  }
  if (problems.length > 0) throw new MoAmqpConfigError(problems);
  return Object.freeze({
    ...(merged as Omit<ResolvedMoAmqpOptions, 'timeZone'>),
    // 'utc' and 'Etc/UTC' both mean UTC; one spelling keeps the fast path simple.
    timeZone: new Intl.DateTimeFormat('en-US', { timeZone: merged.timeZone as string }).resolvedOptions().timeZone,
  }) as ResolvedMoAmqpOptions;
}

/** The URLs to connect to, tried in turn: those of `url`, or `amqp://host:port` built from the parts. */
export function brokerUrlsOf(options: ResolvedMoAmqpOptions): string[] {
  if (options.url) return splitUrls(options.url);
  const host = isIP(options.host, 6) ? `[${options.host}]` : options.host;
  return [`amqp://${host}:${options.port}`];
}
