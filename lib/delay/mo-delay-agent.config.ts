import { MoAmqpConfigError, MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { unknownOptions } from '../config/mo-amqp-options.schema';
import { describeValue } from '../util/describe-value';
import { MoDelayAgentOptions, ResolvedMoDelayAgentOptions } from './mo-delay-agent.options';

const PREFIX = /^(?!amq\.)[\w.:-]{1,200}$/;

const FIELDS = {
  prefix: {
    env: 'AMQP__DELAY_PREFIX',
    allowed: '1-200 letters, digits, "-", "_", "." or ":", not starting with "amq."',
  },
  queueType: { env: 'AMQP__DELAY_QUEUE_TYPE', allowed: 'classic or quorum' },
  prefetch: { env: 'AMQP__DELAY_PREFETCH', allowed: 'a whole number from 1 to 65535' },
} as const;

const DEFAULTS: ResolvedMoDelayAgentOptions = { prefix: 'mo-delay-agent', queueType: 'classic', prefetch: 2000 };

/** Defaults and checks for the agent's options; one error lists every bad value. */
export function resolveMoDelayAgentOptions(
  options: MoDelayAgentOptions | undefined,
  naming: 'option' | 'env' = 'option',
): ResolvedMoDelayAgentOptions {
  const given = { ...(options ?? {}) } as Record<string, unknown>;
  const problems: MoAmqpConfigProblem[] = [];
  const problem = (key: keyof typeof FIELDS) =>
    problems.push({
      name: naming === 'env' ? FIELDS[key].env : key,
      received: describeValue(given[key]),
      allowed: FIELDS[key].allowed,
    });
  problems.push(...unknownOptions(given, Object.keys(FIELDS)));
  const resolved = {
    ...DEFAULTS,
    ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
  } as Record<string, unknown>;
  if (typeof resolved.prefix !== 'string' || !PREFIX.test(resolved.prefix)) problem('prefix');
  if (resolved.queueType !== 'classic' && resolved.queueType !== 'quorum') problem('queueType');
  const prefetch = resolved.prefetch;
  if (!(typeof prefetch === 'number' && Number.isInteger(prefetch) && prefetch >= 1 && prefetch <= 65_535))
    problem('prefetch');
  if (problems.length > 0) throw new MoAmqpConfigError(problems);
  return Object.freeze(resolved) as unknown as ResolvedMoDelayAgentOptions;
}

/** Reads AMQP__DELAY_PREFIX, AMQP__DELAY_QUEUE_TYPE and AMQP__DELAY_PREFETCH (unset or empty: the default). */
export function loadMoDelayAgentOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ResolvedMoDelayAgentOptions {
  const read = (name: string) => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const prefetch = read(FIELDS.prefetch.env);
  return resolveMoDelayAgentOptions(
    {
      prefix: read(FIELDS.prefix.env),
      queueType: read(FIELDS.queueType.env) as MoDelayAgentOptions['queueType'],
      prefetch: prefetch === undefined ? undefined : /^\d+$/.test(prefetch) ? Number(prefetch) : (prefetch as never),
    },
    'env',
  );
}
