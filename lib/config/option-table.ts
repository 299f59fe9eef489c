import { IsBoolean, IsIn, IsOptional, ValidateBy } from 'class-validator';
import { MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { describeValue } from '../util/describe-value';
import { NameRule, WholeNumberRule } from './amqp-rules';
import { IsName, IsWholeNumber, brokenRules } from './option-schema';

/** A rule a value passes by a test of its own (a host name, a URL), and how a message says so. */
export interface TestRule {
  readonly test: (value: unknown) => boolean;
  readonly allowed: string;
}

/** One word of a list (`QUEUE_TYPE`), and how a message says so. */
export interface WordsRule {
  readonly values: readonly string[];
  readonly allowed: string;
}

interface Declared {
  /** The environment variable it is read from. */
  readonly env: string;
  /** One line: what it is for (the public interface's doc comment starts with it). */
  readonly doc: string;
}

/** `true`, `false`, `1`, `0`, `yes` or `no`, any case (`BOOLEAN`'s words). */
export interface BoolOption extends Declared {
  readonly kind: 'bool';
  readonly rule: { readonly allowed: string };
  readonly default: boolean | undefined;
}

/** Digits in the environment; the rule bounds them. */
export interface IntOption extends Declared {
  readonly kind: 'int';
  readonly rule: WholeNumberRule;
  readonly default: number | undefined;
}

/** Text that matches the rule's pattern or passes its test. */
export interface StringOption extends Declared {
  readonly kind: 'string';
  readonly rule: NameRule | TestRule;
  readonly default: string | undefined;
}

/** One of the rule's words; the option's type is their union. */
export interface EnumOption extends Declared {
  readonly kind: 'enum';
  readonly rule: WordsRule;
  readonly default: string | undefined;
}

/**
 * One option, declared once, under its option key: its environment variable,
 * its kind (how the variable's text is read, and the option's type), its rule
 * (with the words errors say it in), its default (`undefined`: none) and a line
 * of doc. The checks, the reading of the environment and the defaults come from
 * it; `OptionsOf` gives its type, which the written-out public interfaces are
 * checked against (`Same`).
 *
 * ```ts
 * port: { env: 'AMQP__PORT', kind: 'int', rule: PORT, default: 5672, doc: 'Broker port, …' },
 * ```
 */
export type OptionSpec = BoolOption | IntOption | StringOption | EnumOption;

/** The type of an option: `boolean`, `number`, `string`, or the union of an enum's words. */
export type OptionValue<S> = S extends { kind: 'bool' }
  ? boolean
  : S extends { kind: 'int' }
    ? number
    : S extends { kind: 'enum'; rule: { values: readonly (infer V)[] } }
      ? V
      : string;

/** The options a table declares, each optional: what a user passes. */
export type OptionsOf<T> = { -readonly [K in keyof T]?: OptionValue<T[K]> };

/** The options after defaults: one without a default may still be undefined. */
export type ResolvedOptionsOf<T> = {
  readonly [K in keyof T]-?: T[K] extends { default: undefined } ? OptionValue<T[K]> | undefined : OptionValue<T[K]>;
};

type Flat<T> = { [K in keyof T]: T[K] };

/** `true` when A and B have the same properties, types and modifiers; `false` otherwise. */
export type Same<A, B> = (<X>() => X extends Flat<A> ? 1 : 2) extends <X>() => X extends Flat<B> ? 1 : 2 ? true : false;

/** Compiles only when `T` is `true`: `type _Check = Assert<Same<Interface, OptionsOf<typeof TABLE>>>`. */
export type Assert<T extends true> = T;

/** A table of options, with its literal types kept (words, defaults) and each default checked against its kind. */
export function optionTable<const T extends Readonly<Record<string, OptionSpec>>>(
  table: T & { readonly [K in keyof T]: { readonly default: OptionValue<T[K]> | undefined } },
): T {
  return table;
}

/** How a problem names its field: by module option (`port`) or environment variable (`AMQP__PORT`). */
export type FieldNaming = 'option' | 'env';

const TRUE = /^(true|1|yes)$/i;
const FALSE = /^(false|0|no)$/i;

/** `text` as an option of this kind, or undefined when it does not read as one. */
function read(spec: OptionSpec, text: string): unknown {
  if (spec.kind === 'bool') return TRUE.test(text) ? true : FALSE.test(text) ? false : undefined;
  if (spec.kind === 'int') return /^\d+$/.test(text) ? Number(text) : undefined;
  return text;
}

/**
 * The options `env` sets, each variable read as its kind; an unset or empty one
 * is left out (it takes its default). One that does not read as its kind
 * (`maybe` for a bool, `10s` for an int) is in `unread`, as its text.
 */
export function readEnv<K extends string>(
  table: Readonly<Record<K, OptionSpec>>,
  env: NodeJS.ProcessEnv,
): { values: Partial<Record<K, unknown>>; unread: Partial<Record<K, string>> } {
  const values: Partial<Record<K, unknown>> = {};
  const unread: Partial<Record<K, string>> = {};
  for (const key of Object.keys(table) as K[]) {
    const text = env[table[key].env]?.trim();
    if (text === undefined || text === '') continue;
    const value = read(table[key], text);
    if (value === undefined) unread[key] = text;
    else values[key] = value;
  }
  return { values, unread };
}

/** class-validator's checks for an option; one without a default may be left undefined. */
function checksOf(spec: OptionSpec): PropertyDecorator[] {
  const checks = spec.default === undefined ? [IsOptional()] : [];
  switch (spec.kind) {
    case 'bool':
      return [...checks, IsBoolean()];
    case 'int':
      return [...checks, IsWholeNumber(spec.rule)];
    case 'enum':
      return [...checks, IsIn(spec.rule.values)];
    case 'string': {
      const rule = spec.rule;
      if (!('test' in rule)) return [...checks, IsName(rule)];
      return [...checks, ValidateBy({ name: rule.test.name || 'test', validator: { validate: rule.test } })];
    }
  }
}

const schemas = new WeakMap<object, new () => object>();

/** The class-validator schema of a table: a class with each option's checks on its property. */
function schemaOf(table: Readonly<Record<string, OptionSpec>>): new () => object {
  let schema = schemas.get(table);
  if (!schema) {
    schema = class OptionsSchema {};
    for (const [key, spec] of Object.entries(table)) {
      for (const check of checksOf(spec)) check(schema.prototype, key);
    }
    schemas.set(table, schema);
  }
  return schema;
}

/** The options of `fields` as `given` sets them, each left undefined taking its default. */
export function withDefaults<K extends string>(
  fields: Readonly<Record<K, OptionSpec>>,
  given: Record<string, unknown>,
): Record<K, unknown> {
  const merged = {} as Record<K, unknown>;
  for (const key of Object.keys(fields) as K[]) {
    merged[key] = given[key] === undefined ? fields[key].default : given[key];
  }
  return merged;
}

/** How a problem shows a received value and says what is allowed; by default, as is and the rule's words. */
export interface ProblemWording<K extends string> {
  received?(key: K, value: unknown): string;
  allowed?(key: K, value: unknown): string;
}

/**
 * Checks `values` against the rules of `fields`: a problem for each field that
 * breaks its rule, in the order of `fields`, named as `naming` says.
 */
export function fieldProblems<K extends string>(
  fields: Readonly<Record<K, OptionSpec>>,
  values: Record<K, unknown>,
  naming: FieldNaming,
  wording: ProblemWording<K> = {},
): { problems: MoAmqpConfigProblem[]; failed: ReadonlySet<K> } {
  const broken = brokenRules(schemaOf(fields), values);
  const failed = (Object.keys(fields) as K[]).filter((key) => broken.has(key));
  return {
    problems: failed.map((key) => ({
      name: naming === 'env' ? fields[key].env : key,
      received: wording.received?.(key, values[key]) ?? describeValue(values[key]),
      allowed: wording.allowed?.(key, values[key]) ?? fields[key].rule.allowed,
    })),
    failed: new Set(failed),
  };
}
