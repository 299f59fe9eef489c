import { IsBoolean, IsIn, ValidateBy, ValidateIf, ValidationArguments } from 'class-validator';
import { EXCHANGE_NAME, PREFETCH, QUEUE_NAME, QUEUE_TYPE, wholeNumberRule } from '../config/amqp-rules';
import { IsName, IsWholeNumber, brokenRules, unknownOptions } from '../config/option-schema';
import { MAX_RETRIES, MAX_RETRY_DELAY_MS } from '../events/retry-policy';
import { MoWordProblem, describeAllowedWords, findBadMoWord } from '../events/vocabulary';
import { describeValue } from '../util/describe-value';
import { MO_CHANGE_WORDS_ALLOWED, isMoChangeObjectType } from '../events/vocabulary';
import type { MoChangeSubscribeOptions, MoEventSubscribeOptions } from './mo-event-subscribe.options';

// The attempt header of a retried copy counts up to MAX_ATTEMPT: the first try and every retry.
const RETRIES = wholeNumberRule(0, MAX_RETRIES);
const RETRY_DELAY_MS = wholeNumberRule(0, MAX_RETRY_DELAY_MS, 'milliseconds');

const NOT_WITH_EXCHANGE = 'notWithExchange';

/** Checks an option only when it is given: unlike `@IsOptional()`, null is a bad value, not a missing one. */
function IfGiven(): PropertyDecorator {
  return ValidateIf((_object, value) => value !== undefined);
}

/** A word of either vocabulary (a consumer reads what the publisher sends); left out, it binds `*`. */
function IsMoWord(): PropertyDecorator {
  return ValidateBy({
    name: 'isMoWord',
    validator: {
      validate: (value, args) =>
        findBadMoWord({ [(args as ValidationArguments).property]: value }, 'any', true) === undefined,
    },
  });
}

/** The rules; `PROBLEMS` below says each one's problem as the error message shows it. */
class MoEventSubscribeOptionsSchema {
  @IsName(QUEUE_NAME)
  queue!: string;

  @IsMoWord()
  service?: string;

  @IsMoWord()
  objectType?: string;

  @IsMoWord()
  action?: string;

  @IfGiven()
  @IsName(EXCHANGE_NAME)
  exchange?: string;

  @IfGiven()
  @ValidateBy({
    name: NOT_WITH_EXCHANGE,
    validator: {
      validate: (_value, args) =>
        ((args as ValidationArguments).object as MoEventSubscribeOptions).exchange === undefined,
    },
  })
  @IsBoolean()
  delayed?: boolean;

  @IfGiven()
  @IsIn(QUEUE_TYPE.values)
  queueType?: string;

  @IfGiven()
  @IsWholeNumber(PREFETCH)
  prefetch?: number;

  @IfGiven()
  @IsWholeNumber(RETRIES)
  retries?: number;

  @IfGiven()
  @IsWholeNumber(RETRY_DELAY_MS)
  retryDelayMs?: number;
}

type OptionKey = keyof MoEventSubscribeOptions;

function mustBe(key: OptionKey, rule: { readonly allowed: string }) {
  return (value: unknown) => `${key} ${describeValue(value)} must be ${rule.allowed}`;
}

function wordProblem(key: 'service' | 'objectType' | 'action') {
  return (value: unknown) => {
    const bad = findBadMoWord({ [key]: value }, 'any', true) as MoWordProblem;
    return `${bad.name} ${describeValue(value)} is not ${describeAllowedWords(bad)}; leave it out for any`;
  };
}

/** Every option, in the order they are checked: the problem a bad value of it makes. */
const PROBLEMS: Readonly<Record<OptionKey, (value: unknown, brokenRules: readonly string[]) => string>> = {
  queue: mustBe('queue', QUEUE_NAME),
  service: wordProblem('service'),
  objectType: wordProblem('objectType'),
  action: wordProblem('action'),
  exchange: (value) => `exchange ${describeValue(value)} is not an exchange name: ${EXCHANGE_NAME.allowed}`,
  delayed: (_value, broken) =>
    broken.includes(NOT_WITH_EXCHANGE) ? 'give exchange or delayed, not both' : 'delayed must be true or false',
  queueType: (value) => `queueType ${describeValue(value)} is not ${QUEUE_TYPE.allowed}`,
  prefetch: mustBe('prefetch', PREFETCH),
  retries: mustBe('retries', RETRIES),
  retryDelayMs: mustBe('retryDelayMs', RETRY_DELAY_MS),
};

const OPTION_KEYS = Object.keys(PROBLEMS) as OptionKey[];

/**
 * What is wrong with the options of one `@MoEventSubscribe`, or `undefined` when
 * nothing is: the first problem, as the `problem` of a `MoEventDecoratorError`,
 * e.g. `prefetch 0 must be a whole number from 1 to 65535`.
 */
export function subscribeOptionsProblem(options: unknown): string | undefined {
  if (options === null || typeof options !== 'object') return 'needs an options object with at least a queue';
  const given = options as Record<string, unknown>;
  const [unknown] = unknownOptions(given, OPTION_KEYS);
  if (unknown) return `unknown option "${unknown.name}"; the options are ${OPTION_KEYS.join(', ')}`;
  const values = Object.fromEntries(OPTION_KEYS.map((key) => [key, given[key]]));
  const broken = brokenRules(MoEventSubscribeOptionsSchema, values);
  const key = OPTION_KEYS.find((k) => broken.has(k));
  return key && PROBLEMS[key](values[key], broken.get(key) ?? []);
}

const CHANGE_KEYS: readonly (keyof MoChangeSubscribeOptions)[] = [
  'queue',
  'objectType',
  'exchange',
  'queueType',
  'prefetch',
  'retries',
  'retryDelayMs',
];

const CHANGE_WORDS_ALLOWED = `${MO_CHANGE_WORDS_ALLOWED}, or a list of them`;

/**
 * What is wrong with the options of one `@MoChangeSubscribe`, or `undefined`:
 * its object type (one word, or a list without repeats), and the queue options
 * as `@MoEventSubscribe` checks them.
 */
export function changeSubscribeOptionsProblem(options: unknown): string | undefined {
  if (options === null || typeof options !== 'object') return 'needs an options object with at least a queue';
  const given = options as Record<string, unknown>;
  const [unknown] = unknownOptions(given, CHANGE_KEYS);
  if (unknown) return `unknown option "${unknown.name}"; the options are ${CHANGE_KEYS.join(', ')}`;
  const { objectType, ...queueOptions } = given;
  if (objectType !== undefined) {
    const words: unknown[] = Array.isArray(objectType) ? objectType : [objectType];
    const bad = words.find((word) => !isMoChangeObjectType(word));
    if (words.length === 0 || bad !== undefined) {
      const what = words.length === 0 ? 'an empty list' : describeValue(bad);
      return `objectType ${what} is not ${CHANGE_WORDS_ALLOWED}; leave it out for any`;
    }
    const twice = words.find((word, i) => words.indexOf(word) !== i);
    if (twice !== undefined) return `objectType lists ${describeValue(twice)} twice`;
  }
  return subscribeOptionsProblem(queueOptions);
}
