/**
 * The vocabulary of OS2mo's legacy AMQP messages: every routing key is
 * `<service>.<object-type>.<action>` with each word taken from these lists.
 */
export const MO_SERVICES = ['employee', 'org_unit'] as const;

export const MO_OBJECT_TYPES = [
  'address',
  'association',
  'employee',
  'engagement',
  'it',
  'leave',
  'manager',
  'org_unit',
  'related_unit',
  'role',
] as const;

export const MO_ACTIONS = ['create', 'update', 'delete'] as const;

export type MoService = (typeof MO_SERVICES)[number];
export type MoObjectType = (typeof MO_OBJECT_TYPES)[number];
export type MoAction = (typeof MO_ACTIONS)[number];

/** A full routing key, e.g. `'employee.engagement.create'`. */
export type MoRoutingKey = `${MoService}.${MoObjectType}.${MoAction}`;

// Sets give the runtime checks O(1) look-ups without widening the tuples' types.
const SERVICES: ReadonlySet<string> = new Set(MO_SERVICES);
const OBJECT_TYPES: ReadonlySet<string> = new Set(MO_OBJECT_TYPES);
const ACTIONS: ReadonlySet<string> = new Set(MO_ACTIONS);

/** Runtime check for JavaScript callers: `isMoService('employee') === true`. */
export function isMoService(value: unknown): value is MoService {
  return typeof value === 'string' && SERVICES.has(value);
}

export function isMoObjectType(value: unknown): value is MoObjectType {
  return typeof value === 'string' && OBJECT_TYPES.has(value);
}

export function isMoAction(value: unknown): value is MoAction {
  return typeof value === 'string' && ACTIONS.has(value);
}

/** A word of a routing key that is not in the vocabulary: which field, how to name it, what is allowed. */
export interface MoWordProblem {
  readonly field: 'service' | 'objectType' | 'action';
  /** The field as a message names it: `service`, `object type`, `action`. */
  readonly name: string;
  readonly value: unknown;
  readonly allowed: readonly string[];
}

const WORD_CHECKS = [
  { field: 'service', name: 'service', allowed: MO_SERVICES, is: isMoService },
  { field: 'objectType', name: 'object type', allowed: MO_OBJECT_TYPES, is: isMoObjectType },
  { field: 'action', name: 'action', allowed: MO_ACTIONS, is: isMoAction },
] as const;

/**
 * The first of the three words outside the vocabulary, or `undefined` when all
 * are in it. With `missingMeansAny`, a word left undefined passes (a binding's `*`).
 */
export function findBadMoWord(
  words: { readonly service?: unknown; readonly objectType?: unknown; readonly action?: unknown },
  missingMeansAny = false,
): MoWordProblem | undefined {
  for (const { field, name, allowed, is } of WORD_CHECKS) {
    const value = words[field];
    if (missingMeansAny && value === undefined) continue;
    if (!is(value)) return { field, name, value, allowed };
  }
  return undefined;
}
