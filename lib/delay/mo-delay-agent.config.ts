import { DELAY_AGENT_PREFIX, PREFETCH, QUEUE_TYPE, wholeNumberRule } from '../config/amqp-rules';
import { givenOptions, unknownOptions } from '../config/option-schema';
import {
  Assert,
  FieldNaming,
  OptionsOf,
  ResolvedOptionsOf,
  Same,
  fieldProblems,
  optionTable,
  readEnv,
  withDefaults,
} from '../config/option-table';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { MAX_HOLD_MS } from './delay-ladder';
import { MoDelayAgentOptions, ResolvedMoDelayAgentOptions } from './mo-delay-agent.options';

/** Up to a minute: the hold queues cover 64 seconds. */
const HOLD_MS = wholeNumberRule(0, MAX_HOLD_MS, 'milliseconds');

/** @internal Every option of the agent: its variable, kind, rule, default and a line of doc (`OptionSpec`). */
export const DELAY_AGENT_FIELDS = optionTable({
  prefix: {
    env: 'AMQP__DELAY_PREFIX',
    kind: 'string',
    rule: DELAY_AGENT_PREFIX,
    default: 'mo-delay-agent',
    doc: "Names the agent's queues and exchanges",
  },
  queueType: {
    env: 'AMQP__DELAY_QUEUE_TYPE',
    kind: 'enum',
    rule: QUEUE_TYPE,
    default: 'classic',
    doc: "The type of the agent's queues",
  },
  prefetch: {
    env: 'AMQP__DELAY_PREFETCH',
    kind: 'int',
    rule: PREFETCH,
    default: 2000,
    doc: 'Messages the agent handles at once per queue (incoming, due).',
  },
  holdMs: {
    env: 'AMQP__DELAY_HOLD_MS',
    kind: 'int',
    rule: HOLD_MS,
    default: 60_000,
    doc: 'A message due within this many milliseconds (at most 60000) waits in the hold queue of its due second',
  },
});

// The public types are written out (documented in their .d.ts); these stop the build when they drift from the table.
type _OptionsMatchTable = Assert<Same<MoDelayAgentOptions, OptionsOf<typeof DELAY_AGENT_FIELDS>>>;
type _ResolvedMatchesTable = Assert<Same<ResolvedMoDelayAgentOptions, ResolvedOptionsOf<typeof DELAY_AGENT_FIELDS>>>;

/** Defaults and checks for the agent's options; one error lists every bad value. */
export function resolveMoDelayAgentOptions(
  options: MoDelayAgentOptions | undefined,
  naming: FieldNaming = 'option',
): ResolvedMoDelayAgentOptions {
  const given = givenOptions(options, 'MoDelayAgentModule options');
  const merged = withDefaults(DELAY_AGENT_FIELDS, given);
  const problems = [
    ...unknownOptions(given, Object.keys(DELAY_AGENT_FIELDS)),
    ...fieldProblems(DELAY_AGENT_FIELDS, merged, naming).problems,
  ];
  if (problems.length > 0) throw new MoAmqpConfigError(problems);
  return Object.freeze(merged) as unknown as ResolvedMoDelayAgentOptions;
}

/** Reads AMQP__DELAY_PREFIX, AMQP__DELAY_QUEUE_TYPE, AMQP__DELAY_PREFETCH and AMQP__DELAY_HOLD_MS (unset or empty: the default). */
export function loadMoDelayAgentOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ResolvedMoDelayAgentOptions {
  const { values, unread } = readEnv(DELAY_AGENT_FIELDS, env);
  // A number that is not digits goes to its rule as text, which refuses it in the table's order.
  return resolveMoDelayAgentOptions({ ...values, ...unread } as MoDelayAgentOptions, 'env');
}
