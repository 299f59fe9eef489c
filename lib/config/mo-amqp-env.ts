import { MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { MoAmqpModuleOptions, ResolvedMoAmqpOptions } from './mo-amqp-options.interface';
import { FIELDS, allowedFor, resolveMoAmqpOptions, showReceived } from './mo-amqp-options.schema';

const TRUE = /^(true|1|yes)$/i;
const FALSE = /^(false|0|no)$/i;
const WHOLE_NUMBER = /^\d+$/;

type Kind = 'boolean' | 'integer' | 'string';

const KINDS: Readonly<Record<keyof MoAmqpModuleOptions, Kind>> = {
  enabled: 'boolean',
  exchange: 'string',
  delayedExchange: 'string',
  exchangeDurable: 'boolean',
  declareExchanges: 'boolean',
  vocabulary: 'string',
  host: 'string',
  port: 'integer',
  url: 'string',
  timeZone: 'string',
  publishTimeoutMs: 'integer',
  connectTimeoutMs: 'integer',
  maxInFlight: 'integer',
  eventFailures: 'string',
  spoolDir: 'string',
  spoolMaxBytes: 'integer',
  shutdownTimeoutMs: 'integer',
  tlsCaFile: 'string',
  tlsCertFile: 'string',
  tlsKeyFile: 'string',
  tlsKeyPassphrase: 'string',
  tlsVerify: 'boolean',
  auth: 'string',
  outbox: 'string',
  outboxUrl: 'string',
  outboxTable: 'string',
  outboxRelay: 'boolean',
  outboxConnection: 'string',
};

/**
 * Reads `ENABLE_AMQP` and the `AMQP__*` variables into validated options.
 * An unset or empty variable takes its default. Throws `MoAmqpConfigError`
 * naming each bad variable, its value (password masked) and what is allowed.
 */
export function loadMoAmqpOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ResolvedMoAmqpOptions {
  const options: Record<string, unknown> = {};
  const problems: MoAmqpConfigProblem[] = [];
  for (const [key, kind] of Object.entries(KINDS) as [keyof MoAmqpModuleOptions, Kind][]) {
    const name = FIELDS[key].env;
    const raw = env[name]?.trim();
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    if (kind === 'boolean') {
      value = TRUE.test(raw) ? true : FALSE.test(raw) ? false : undefined;
    } else if (kind === 'integer') {
      value = WHOLE_NUMBER.test(raw) ? Number(raw) : undefined;
    }
    if (value === undefined) {
      problems.push({ name, received: showReceived(key, raw), allowed: allowedFor(key, raw) });
    } else {
      options[key] = value;
    }
  }
  return resolveMoAmqpOptions(options, 'env', problems);
}
