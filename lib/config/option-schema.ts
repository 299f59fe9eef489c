import { plainToInstance } from 'class-transformer';
import { IsInt, IsString, Matches, Max, Min, validateSync } from 'class-validator';
import { MoAmqpConfigError, MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { describeValue } from '../util/describe-value';
import { NameRule, WholeNumberRule } from './amqp-rules';

/** One option of a `FIELDS` table: its environment variable, what it accepts in words, its default. */
export interface FieldSpec {
  readonly env: string;
  readonly allowed: string;
  readonly defaultValue: unknown;
}

/** How a problem names its field: by module option (`port`) or environment variable (`AMQP__PORT`). */
export type FieldNaming = 'option' | 'env';

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

/** The options of `fields` as `given` sets them, each left undefined taking its default. */
export function withDefaults<K extends string>(
  fields: Readonly<Record<K, FieldSpec>>,
  given: Record<string, unknown>,
): Record<K, unknown> {
  const merged = {} as Record<K, unknown>;
  for (const key of Object.keys(fields) as K[]) {
    merged[key] = given[key] === undefined ? fields[key].defaultValue : given[key];
  }
  return merged;
}

/** How a problem shows a received value and says what is allowed; by default, as is and the field's words. */
export interface ProblemWording<K extends string> {
  received?(key: K, value: unknown): string;
  allowed?(key: K, value: unknown): string;
}

/**
 * Checks `values` against `schema`: a problem for each field that breaks a rule,
 * in the order of `fields`, named as `naming` says.
 */
export function fieldProblems<K extends string>(
  schema: new () => object,
  fields: Readonly<Record<K, FieldSpec>>,
  values: Record<K, unknown>,
  naming: FieldNaming,
  wording: ProblemWording<K> = {},
): { problems: MoAmqpConfigProblem[]; failed: ReadonlySet<K> } {
  const broken = brokenRules(schema, values);
  const failed = (Object.keys(fields) as K[]).filter((key) => broken.has(key));
  return {
    problems: failed.map((key) => ({
      name: naming === 'env' ? fields[key].env : key,
      received: wording.received?.(key, values[key]) ?? describeValue(values[key]),
      allowed: wording.allowed?.(key, values[key]) ?? fields[key].allowed,
    })),
    failed: new Set(failed),
  };
}
