import { plainToInstance } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsTimeZone,
  Matches,
  Max,
  Min,
  ValidateBy,
  isFQDN,
  isIP,
  validateSync,
} from 'class-validator';
import { MoAmqpConfigError, MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { MO_VOCABULARY_NAMES } from '../events/vocabulary';
import { describeValue } from '../util/describe-value';
import { redactUrl } from '../util/redact';
import { PERCENT_ENCODE_HINT, parseAmqpUrl, splitUrls } from './amqp-url';
import { MoAmqpModuleOptions, ResolvedMoAmqpOptions } from './mo-amqp-options.interface';
import { TLS_FIELDS, tlsProblems } from './tls';

// setTimeout's ceiling; a larger delay fires at once.
const MAX_TIMER_MS = 2_147_483_647;
// AMQP 0-9-1 names: letters, digits, hyphen, underscore, period, colon; at most 255.
const EXCHANGE_NAME = /^(?!amq\.)[A-Za-z0-9_.:-]{1,255}$/;

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

  @IsString()
  @Matches(EXCHANGE_NAME)
  exchange!: string;

  @IsString()
  @Matches(EXCHANGE_NAME)
  delayedExchange!: string;

  @IsBoolean()
  exchangeDurable!: boolean;

  @IsBoolean()
  declareExchanges!: boolean;

  @IsIn(MO_VOCABULARY_NAMES)
  vocabulary!: string;

  @ValidateBy({ name: 'isBrokerHost', validator: { validate: isBrokerHost } })
  host!: string;

  @IsInt()
  @Min(1)
  @Max(65535)
  port!: number;

  @IsOptional()
  @ValidateBy({ name: 'isAmqpUrlList', validator: { validate: isAmqpUrlList } })
  url?: string;

  @IsTimeZone()
  timeZone!: string;

  @IsInt()
  @Min(1)
  @Max(MAX_TIMER_MS)
  publishTimeoutMs!: number;

  @IsInt()
  @Min(1)
  @Max(MAX_TIMER_MS)
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

  @IsInt()
  @Min(0)
  @Max(MAX_TIMER_MS)
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
}

type OptionKey = keyof MoAmqpModuleOptions;

interface FieldSpec {
  readonly env: string;
  readonly allowed: string;
  readonly defaultValue: unknown;
}

/** Every option: its environment variable, what it accepts and its default. */
export const FIELDS: Readonly<Record<OptionKey, FieldSpec>> = {
  enabled: { env: 'ENABLE_AMQP', allowed: 'true, false, 1, 0, yes or no (any case)', defaultValue: false },
  exchange: {
    env: 'AMQP__EXCHANGE',
    allowed: '1-255 letters, digits, "-", "_", "." or ":", not starting with "amq."',
    defaultValue: 'os2mo',
  },
  delayedExchange: {
    env: 'AMQP__DELAYED_EXCHANGE',
    allowed: '1-255 letters, digits, "-", "_", "." or ":", not starting with "amq."',
    defaultValue: 'os2mo_delayed',
  },
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
  port: { env: 'AMQP__PORT', allowed: 'a whole number from 1 to 65535', defaultValue: 5672 },
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
    allowed: `a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`,
    defaultValue: 10_000,
  },
  connectTimeoutMs: {
    env: 'AMQP__CONNECT_TIMEOUT_MS',
    allowed: `a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`,
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
    allowed: `a whole number of milliseconds from 0 to ${MAX_TIMER_MS}`,
    defaultValue: 5_000,
  },
  ...TLS_FIELDS,
};

const OPTION_KEYS = Object.keys(FIELDS) as OptionKey[];

/** A problem for each option in `given` that is not one of `known`, naming them all. */
export function unknownOptions(given: Record<string, unknown>, known: readonly string[]): MoAmqpConfigProblem[] {
  return Object.keys(given)
    .filter((key) => !known.includes(key))
    .map((key) => ({
      name: key,
      received: describeValue(given[key]),
      allowed: `no such option; the options are ${known.join(', ')}`,
    }));
}

/** How a problem names its field: by module option (`port`) or environment variable (`AMQP__PORT`). */
export type FieldNaming = 'option' | 'env';

/** What a field allows; for a URL that looks like one but breaks the grammar, how to write it. */
export function allowedFor(key: OptionKey, value: unknown): string {
  if (key === 'url' && typeof value === 'string' && /^amqps?:\/\//i.test(value.trim())) {
    return `${FIELDS.url.allowed}; ${PERCENT_ENCODE_HINT}`;
  }
  return FIELDS[key].allowed;
}

export function showReceived(key: string, value: unknown): string {
  if (key === 'tlsKeyPassphrase') return '***'; // a secret, never shown
  return key === 'url' && typeof value === 'string' ? describeValue(redactUrl(value)) : describeValue(value);
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
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new MoAmqpConfigError([
      { name: 'MoAmqpModule options', received: describeValue(options), allowed: 'an object' },
    ]);
  }
  const given: Record<string, unknown> = { ...(options ?? {}) };
  const unknown = unknownOptions(given, OPTION_KEYS);
  problems.push(...unknown);
  for (const { name } of unknown) delete given[name];
  const merged: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    merged[key] = given[key] === undefined ? FIELDS[key].defaultValue : given[key];
  }
  const failed = new Set(
    validateSync(plainToInstance(MoAmqpOptionsSchema, merged)).map((error) => error.property as OptionKey),
  );
  for (const key of OPTION_KEYS) {
    if (failed.has(key)) {
      problems.push({
        name: naming === 'env' ? FIELDS[key].env : key,
        received: showReceived(key, merged[key]),
        allowed: allowedFor(key, merged[key]),
      });
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
