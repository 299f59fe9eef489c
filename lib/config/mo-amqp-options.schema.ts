import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Min, ValidateBy, isFQDN, isIP } from 'class-validator';
import { MoAmqpConfigError, MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { MO_VOCABULARY_NAMES } from '../events/vocabulary';
import { describeValue } from '../util/describe-value';
import { redactUrl } from './redact';
import { EXCHANGE_NAME, PORT, isIanaTimeZone, wholeNumberRule } from './amqp-rules';
import { PERCENT_ENCODE_HINT, frameLimitProblem, parseAmqpUrl, splitUrls } from './amqp-url';
import { MoAmqpModuleOptions, ResolvedMoAmqpOptions } from './mo-amqp-options.interface';
import {
  FieldNaming,
  FieldSpec,
  IsName,
  IsWholeNumber,
  fieldProblems,
  givenOptions,
  unknownOptions,
  withDefaults,
} from './option-schema';
import { TLS_FIELDS, tlsProblems } from './tls-options';
import { OUTBOX_FIELDS, OUTBOX_TABLE, isPostgresUrl, outboxProblems, redactPostgresUrl } from './outbox-options';

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

/** The rules; `FIELDS` below holds the words users see for each. */
class MoAmqpOptionsSchema {
  @IsBoolean()
  enabled!: boolean;

  @IsName(EXCHANGE_NAME)
  exchange!: string;

  @IsName(EXCHANGE_NAME)
  delayedExchange!: string;

  @IsBoolean()
  exchangeDurable!: boolean;

  @IsBoolean()
  declareExchanges!: boolean;

  @IsIn(MO_VOCABULARY_NAMES)
  vocabulary!: string;

  @ValidateBy({ name: 'isBrokerHost', validator: { validate: isBrokerHost } })
  host!: string;

  @IsWholeNumber(PORT)
  port!: number;

  @IsOptional()
  @ValidateBy({ name: 'isAmqpUrlList', validator: { validate: isAmqpUrlList } })
  url?: string;

  @ValidateBy({ name: 'isIanaTimeZone', validator: { validate: isIanaTimeZone } })
  timeZone!: string;

  @IsWholeNumber(TIMEOUT_MS)
  publishTimeoutMs!: number;

  @IsWholeNumber(TIMEOUT_MS)
  connectTimeoutMs!: number;

  @IsInt()
  @Min(1)
  maxInFlight!: number;

  @IsIn(['log', 'throw'])
  eventFailures!: 'log' | 'throw';

  @IsString()
  @Matches(/^(?!\s*$)[^\0]+$/)
  spoolDir!: string;

  @IsInt()
  @Min(1024)
  spoolMaxBytes!: number;

  @IsWholeNumber(SHUTDOWN_TIMEOUT_MS)
  shutdownTimeoutMs!: number;

  @IsOptional()
  @IsString()
  @Matches(/^(?!\s*$)[^\0]+$/)
  tlsCaFile?: string;

  @IsOptional()
  @IsString()
  @Matches(/^(?!\s*$)[^\0]+$/)
  tlsCertFile?: string;

  @IsOptional()
  @IsString()
  @Matches(/^(?!\s*$)[^\0]+$/)
  tlsKeyFile?: string;

  @IsOptional()
  @IsString()
  @Matches(/^[^\0]+$/)
  tlsKeyPassphrase?: string;

  @IsBoolean()
  tlsVerify!: boolean;

  @IsIn(['plain', 'external'])
  auth!: 'plain' | 'external';

  @IsIn(['off', 'postgres'])
  outbox!: 'off' | 'postgres';

  @IsOptional()
  @ValidateBy({ name: 'isPostgresUrl', validator: { validate: isPostgresUrl } })
  outboxUrl?: string;

  @IsString()
  @Matches(OUTBOX_TABLE)
  outboxTable!: string;

  @IsBoolean()
  outboxRelay!: boolean;

  @IsOptional()
  @IsString()
  @Matches(/^[^\0]+$/)
  outboxConnection?: string;
}

type OptionKey = keyof MoAmqpModuleOptions;

/** Every option: its environment variable, what it accepts and its default. */
export const FIELDS: Readonly<Record<OptionKey, FieldSpec>> = {
  enabled: { env: 'ENABLE_AMQP', allowed: 'true, false, 1, 0, yes or no (any case)', defaultValue: false },
  exchange: { env: 'AMQP__EXCHANGE', allowed: EXCHANGE_NAME.allowed, defaultValue: 'os2mo' },
  delayedExchange: { env: 'AMQP__DELAYED_EXCHANGE', allowed: EXCHANGE_NAME.allowed, defaultValue: 'os2mo_delayed' },
  exchangeDurable: {
    env: 'AMQP__EXCHANGE_DURABLE',
    allowed: 'true, false, 1, 0, yes or no (any case)',
    defaultValue: true,
  },
  declareExchanges: {
    env: 'AMQP__DECLARE_EXCHANGES',
    allowed: 'true, false, 1, 0, yes or no (any case)',
    defaultValue: true,
  },
  vocabulary: {
    env: 'AMQP__VOCABULARY',
    allowed: `${MO_VOCABULARY_NAMES.join(' or ')}`,
    defaultValue: 'seed',
  },
  host: { env: 'AMQP__HOST', allowed: 'a host name or IP address', defaultValue: 'localhost' },
  port: { env: 'AMQP__PORT', allowed: PORT.allowed, defaultValue: 5672 },
  url: {
    env: 'AMQP__URL',
    allowed:
      'an amqp:// or amqps:// URL such as amqp://user:password@host:5672/vhost, or several separated by commas (a cluster)',
    defaultValue: undefined,
  },
  timeZone: {
    env: 'AMQP__TIME_ZONE',
    allowed: 'an IANA time zone such as UTC or Europe/Copenhagen',
    defaultValue: 'UTC',
  },
  publishTimeoutMs: {
    env: 'AMQP__PUBLISH_TIMEOUT_MS',
    allowed: TIMEOUT_MS.allowed,
    defaultValue: 10_000,
  },
  connectTimeoutMs: {
    env: 'AMQP__CONNECT_TIMEOUT_MS',
    allowed: TIMEOUT_MS.allowed,
    defaultValue: 10_000,
  },
  maxInFlight: { env: 'AMQP__MAX_IN_FLIGHT', allowed: 'a whole number from 1 up', defaultValue: 10_000 },
  eventFailures: { env: 'AMQP__EVENT_FAILURES', allowed: 'log or throw', defaultValue: 'log' },
  spoolDir: { env: 'AMQP__SPOOL_DIR', allowed: 'a directory path, or off', defaultValue: '.mo-amqp-spool' },
  spoolMaxBytes: {
    env: 'AMQP__SPOOL_MAX_BYTES',
    allowed: 'a whole number of bytes from 1024 up',
    defaultValue: 100 * 1024 * 1024,
  },
  shutdownTimeoutMs: {
    env: 'AMQP__SHUTDOWN_TIMEOUT_MS',
    allowed: SHUTDOWN_TIMEOUT_MS.allowed,
    defaultValue: 5_000,
  },
  ...TLS_FIELDS,
  ...OUTBOX_FIELDS,
};

const OPTION_KEYS = Object.keys(FIELDS) as OptionKey[];

/** What a field allows; for a URL that looks like one but breaks the grammar, how to write it. */
export function allowedFor(key: OptionKey, value: unknown): string {
  if (key === 'url' && typeof value === 'string' && /^amqps?:\/\//i.test(value.trim())) {
    return `${FIELDS.url.allowed}; ${PERCENT_ENCODE_HINT}`;
  }
  return FIELDS[key].allowed;
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
  const merged: Record<string, unknown> = withDefaults(FIELDS, given);
  const checked = fieldProblems(MoAmqpOptionsSchema, FIELDS, merged, naming, {
    received: showReceived,
    allowed: allowedFor,
  });
  problems.push(...checked.problems);
  const { failed } = checked;
  if (!failed.has('url') && typeof merged.url === 'string') {
    for (const url of splitUrls(merged.url)) {
      const allowed = frameLimitProblem(url);
      const name = naming === 'env' ? FIELDS.url.env : 'url';
      if (allowed) problems.push({ name, received: describeValue(redactUrl(url)), allowed });
    }
  }
  if (!failed.has('exchange') && !failed.has('delayedExchange') && merged.exchange === merged.delayedExchange) {
    problems.push({
      name: naming === 'env' ? FIELDS.delayedExchange.env : 'delayedExchange',
      received: describeValue(merged.delayedExchange),
      allowed: `a name other than ${naming === 'env' ? FIELDS.exchange.env : 'exchange'}'s: the delay agent would republish every event into its own input, for ever`,
    });
  }
  if (!(['url', ...Object.keys(TLS_FIELDS)] as OptionKey[]).some((key) => failed.has(key))) {
    problems.push(...tlsProblems(merged, (key) => (naming === 'env' ? FIELDS[key].env : key)));
  }
  if (!failed.has('outbox') && !failed.has('outboxUrl')) {
    problems.push(...outboxProblems(merged, (key) => (naming === 'env' ? FIELDS[key].env : key)));
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
