import {
  MO_SERVICES,
  MO_VOCABULARIES,
  MoAction,
  MoObjectType,
  MoRoutingKey,
  MoService,
  MoVocabulary,
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

/**
 * Splits a routing key into its three words, or `undefined` when any word is
 * outside both vocabularies (a reader accepts the words of either).
 */
export function parseMoRoutingKey(routingKey: unknown): MoRoutingKeyParts | undefined {
  if (typeof routingKey !== 'string') return undefined;
  const words = routingKey.split('.');
  if (words.length !== 3) return undefined;
  const [service, objectType, action] = words;
  if (!isMoService(service) || !isMoObjectType(objectType) || !isMoAction(action)) return undefined;
  return { service, objectType, action };
}

/**
 * Every routing key of one vocabulary, in vocabulary order: 2 × 10 × 3 = 60 for
 * `seed` (the default), 2 × 12 × 4 = 96 for `os2mo`.
 */
export function allMoRoutingKeys(vocabulary: MoVocabulary = 'seed'): MoRoutingKey[] {
  const { objectTypes, actions } = MO_VOCABULARIES[vocabulary];
  return MO_SERVICES.flatMap((s) =>
    objectTypes.flatMap((o: MoObjectType) => actions.map((a: MoAction) => moRoutingKey(s, o, a))),
  );
}
