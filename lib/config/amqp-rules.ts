/**
 * The AMQP names and numbers the library accepts, each written once with the
 * words its error messages use: module options, the delay agent, `@MoEventSubscribe`
 * and the CLI all check against these.
 */

/** A name the broker will take (or other text a pattern describes): the pattern, and how a message says what is allowed. */
export interface NameRule {
  readonly pattern: RegExp;
  readonly allowed: string;
}

/** A whole number from `min` to `max`, and how a message says so. */
export interface WholeNumberRule {
  readonly min: number;
  readonly max: number;
  readonly allowed: string;
}

// AMQP 0-9-1 names: letters, digits, hyphen, underscore, period, colon; at most 255.
// "amq." is the broker's own (amq.topic, amq.default): declaring one is refused.
function nameRule(maxLength: number): NameRule {
  return {
    pattern: new RegExp(`^(?!amq\\.)[\\w.:-]{1,${maxLength}}$`),
    allowed: `1-${maxLength} letters, digits, "-", "_", "." or ":", not starting with "amq."`,
  };
}

/** `wholeNumberRule(0, 100)`; with a unit, `a whole number of milliseconds from 0 to …`. */
export function wholeNumberRule(min: number, max: number, unit?: string): WholeNumberRule {
  return { min, max, allowed: `a whole number ${unit ? `of ${unit} ` : ''}from ${min} to ${max}` };
}

/** `wholeNumberFrom(1024, 'bytes')`: a whole number of bytes from 1024 up, without a ceiling. */
export function wholeNumberFrom(min: number, unit?: string): WholeNumberRule {
  return { min, max: Infinity, allowed: `a whole number ${unit ? `of ${unit} ` : ''}from ${min} up` };
}

/** A switch: how an environment variable says yes or no (`ENABLE_AMQP`'s words, Python's `True` too). */
export const BOOLEAN = { allowed: 'true, false, 1, 0, yes or no (any case)' } as const;

/** A path: not blank, and without the NUL byte no file system takes. */
export function pathRule(allowed: string): NameRule {
  return { pattern: /^(?!\s*$)[^\0]+$/, allowed };
}

/** Any text but the empty one, without a NUL byte (a passphrase, a connection name). */
export function textRule(allowed: string): NameRule {
  return { pattern: /^[^\0]+$/, allowed };
}

export const EXCHANGE_NAME = nameRule(255);

/** 249, so that `<queue>.retry`, the longest name the library derives from a queue's, fits in 255. */
export const QUEUE_NAME = nameRule(249);

/** 200 leaves room for the agent's suffixes (`.route.entry`, `.wait.NN`, `.incoming`). */
export const DELAY_AGENT_PREFIX = nameRule(200);

/** basic.qos's prefetch count is an unsigned short; 0 would mean no limit. */
export const PREFETCH = wholeNumberRule(1, 65_535);

/** A TCP port. */
export const PORT = wholeNumberRule(1, 65_535);

const QUEUE_TYPES = ['classic', 'quorum'] as const;

/** The queue types the library declares (`x-queue-type`). */
export const QUEUE_TYPE = { values: QUEUE_TYPES, allowed: QUEUE_TYPES.join(' or ') } as const;

/**
 * An IANA time zone (UTC, Europe/Copenhagen): a name Intl knows that is not an
 * offset. Node 22 on (its newer ICU) also takes "+02:00" as a time zone, which
 * Node 20 refuses: refused on every Node, so one configuration means the same
 * on each, and a fixed offset never stands in for a zone with summer time.
 */
export function isIanaTimeZone(value: unknown): value is string {
  if (typeof value !== 'string' || /^[+\-\u2212]|^\d/.test(value)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value });
    return true;
  } catch {
    return false;
  }
}
