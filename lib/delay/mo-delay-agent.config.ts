import { IsIn } from 'class-validator';
import { DELAY_AGENT_PREFIX, PREFETCH, QUEUE_TYPE, wholeNumberRule } from '../config/amqp-rules';
import {
  FieldNaming,
  FieldSpec,
  IsName,
  IsWholeNumber,
  fieldProblems,
  givenOptions,
  unknownOptions,
  withDefaults,
} from '../config/option-schema';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { MAX_HOLD_MS } from './delay-ladder';
import { MoDelayAgentOptions, ResolvedMoDelayAgentOptions } from './mo-delay-agent.options';

/** Up to a minute: the hold queues cover 64 seconds. */
const HOLD_MS = wholeNumberRule(0, MAX_HOLD_MS, 'milliseconds');

/** The rules; `FIELDS` below holds the words users see for each. */
class MoDelayAgentOptionsSchema {
  @IsName(DELAY_AGENT_PREFIX)
  prefix!: string;

  @IsIn(QUEUE_TYPE.values)
  queueType!: string;

  @IsWholeNumber(PREFETCH)
  prefetch!: number;

  @IsWholeNumber(HOLD_MS)
  holdMs!: number;
}

/** Every option of the agent: its environment variable, what it accepts and its default. */
const FIELDS: Readonly<Record<keyof MoDelayAgentOptions, FieldSpec>> = {
  prefix: { env: 'AMQP__DELAY_PREFIX', allowed: DELAY_AGENT_PREFIX.allowed, defaultValue: 'mo-delay-agent' },
  queueType: { env: 'AMQP__DELAY_QUEUE_TYPE', allowed: QUEUE_TYPE.allowed, defaultValue: 'classic' },
  prefetch: { env: 'AMQP__DELAY_PREFETCH', allowed: PREFETCH.allowed, defaultValue: 2000 },
  holdMs: { env: 'AMQP__DELAY_HOLD_MS', allowed: HOLD_MS.allowed, defaultValue: 60_000 },
};

/** Defaults and checks for the agent's options; one error lists every bad value. */
export function resolveMoDelayAgentOptions(
  options: MoDelayAgentOptions | undefined,
  naming: FieldNaming = 'option',
): ResolvedMoDelayAgentOptions {
  const given = givenOptions(options, 'MoDelayAgentModule options');
  const merged = withDefaults(FIELDS, given);
  const problems = [
    ...unknownOptions(given, Object.keys(FIELDS)),
    ...fieldProblems(MoDelayAgentOptionsSchema, FIELDS, merged, naming).problems,
  ];
  if (problems.length > 0) throw new MoAmqpConfigError(problems);
  return Object.freeze(merged) as unknown as ResolvedMoDelayAgentOptions;
}

/** Reads AMQP__DELAY_PREFIX, AMQP__DELAY_QUEUE_TYPE, AMQP__DELAY_PREFETCH and AMQP__DELAY_HOLD_MS (unset or empty: the default). */
export function loadMoDelayAgentOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ResolvedMoDelayAgentOptions {
  const read = (name: string) => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const wholeNumber = (name: string) => {
    const value = read(name);
    return value === undefined ? undefined : /^\d+$/.test(value) ? Number(value) : (value as never);
  };
  return resolveMoDelayAgentOptions(
    {
      prefix: read(FIELDS.prefix.env),
      queueType: read(FIELDS.queueType.env) as MoDelayAgentOptions['queueType'],
      prefetch: wholeNumber(FIELDS.prefetch.env),
      holdMs: wholeNumber(FIELDS.holdMs.env),
    },
    'env',
  );
}
