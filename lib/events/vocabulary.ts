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
