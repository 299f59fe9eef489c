import { plainToInstance } from 'class-transformer';
import { IsInt, IsString, Matches, Max, Min, validateSync } from 'class-validator';
import { MoAmqpConfigError, MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { describeValue } from '../util/describe-value';
import { NameRule, WholeNumberRule } from './amqp-rules';

/** class-validator's checks for a `NameRule`: a string matching its pattern. */
export function IsName(rule: NameRule): PropertyDecorator {
  return (target, key) => {
    IsString()(target, key as string);
    Matches(rule.pattern)(target, key as string);
  };
}

/** class-validator's checks for a `WholeNumberRule`. */
export function IsWholeNumber(rule: WholeNumberRule): PropertyDecorator {
  return (target, key) => {
    IsInt()(target, key as string);
    Min(rule.min)(target, key as string);
    Max(rule.max)(target, key as string);
  };
}

/** Each property of `values` that breaks a rule of `schema`, with the names of the rules it breaks. */
export function brokenRules(schema: new () => object, values: Record<string, unknown>): Map<string, string[]> {
  return new Map(
    validateSync(plainToInstance(schema, values)).map((error) => [
      error.property,
      Object.keys(error.constraints ?? {}),
    ]),
  );
}

/** `options` as a record to read; a `MoAmqpConfigError` when it is something else than an object. */
export function givenOptions(options: unknown, what: string): Record<string, unknown> {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new MoAmqpConfigError([{ name: what, received: describeValue(options), allowed: 'an object' }]);
  }
  return { ...(options ?? {}) };
}

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
