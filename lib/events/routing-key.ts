import {
  MO_ACTIONS,
  MO_OBJECT_TYPES,
  MO_SERVICES,
  MoAction,
  MoObjectType,
  MoRoutingKey,
  MoService,
  isMoAction,
  isMoObjectType,
  isMoService,
} from './vocabulary';

export interface MoRoutingKeyParts {
  readonly service: MoService;
  readonly objectType: MoObjectType;
  readonly action: MoAction;
}

/** `employee.engagement.create` from its three words (no checks: the types are the check). */
export function moRoutingKey(service: MoService, objectType: MoObjectType, action: MoAction): MoRoutingKey {
  return `${service}.${objectType}.${action}`;
}

/** Splits a routing key into its three words, or `undefined` when any word is outside the vocabulary. */
export function parseMoRoutingKey(routingKey: unknown): MoRoutingKeyParts | undefined {
  if (typeof routingKey !== 'string') return undefined;
  const words = routingKey.split('.');
  if (words.length !== 3) return undefined;
  const [service, objectType, action] = words;
  if (!isMoService(service) || !isMoObjectType(objectType) || !isMoAction(action)) return undefined;
  return { service, objectType, action };
}

/** Every routing key of the vocabulary, in vocabulary order (2 × 10 × 3 = 60). */
export function allMoRoutingKeys(): MoRoutingKey[] {
  return MO_SERVICES.flatMap((s) => MO_OBJECT_TYPES.flatMap((o) => MO_ACTIONS.map((a) => moRoutingKey(s, o, a))));
}
