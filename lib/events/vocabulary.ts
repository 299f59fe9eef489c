/**
 * The words of MO routing keys, `<service>.<object-type>.<action>`, in the two
 * vocabularies OS2mo has used: the seed's (its documentation page, OS2mo
 * 2019-2021) and OS2mo's own since 2021-07-27 (also every ramqp version).
 */
export const MO_SERVICES = ['employee', 'org_unit'] as const;

/** The seed's ten object types. */
export const MO_SEED_OBJECT_TYPES = [
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

/**
 * OS2mo 2021+ and ramqp: the seed's ten plus `kle` and `owner`, and `rolebinding`,
 * which OS2mo sends where it sent `role` before 2024-03-14 (`role` stays a word).
 */
export const MO_OS2MO_OBJECT_TYPES = [...MO_SEED_OBJECT_TYPES, 'kle', 'owner', 'rolebinding'] as const;

export const MO_SEED_ACTIONS = ['create', 'update', 'delete'] as const;

export const MO_OS2MO_ACTIONS = ['create', 'edit', 'terminate', 'refresh'] as const;

/**
 * Each vocabulary's words. Publishing uses the configured one (`AMQP__VOCABULARY`);
 * readers accept the words of both.
 */
export const MO_VOCABULARIES = {
  seed: {
    services: MO_SERVICES,
    objectTypes: MO_SEED_OBJECT_TYPES,
    actions: MO_SEED_ACTIONS,
    objectUuidRequired: false,
  },
  os2mo: {
    services: MO_SERVICES,
    objectTypes: MO_OS2MO_OBJECT_TYPES,
    actions: MO_OS2MO_ACTIONS,
    objectUuidRequired: true,
  },
} as const;

/**
 * The object types of OS2mo's AMQP subsystem (2023-), each one a whole routing
 * key (`engagement`): OS2mo's list at its head, and `role`, its word for
 * `rolebinding` before 2024-03-14.
 */
export const MO_CHANGE_OBJECT_TYPES = [
  'address',
  'association',
  'class',
  'engagement',
  'facet',
  'itsystem',
  'ituser',
  'kle',
  'leave',
  'manager',
  'org_unit',
  'owner',
  'person',
  'related_unit',
  'rolebinding',
  'role',
] as const;

/** An object type of OS2mo's AMQP subsystem, which is also the routing key of its messages. */
export type MoChangeObjectType = (typeof MO_CHANGE_OBJECT_TYPES)[number];

const CHANGE_WORDS: ReadonlySet<string> = new Set(MO_CHANGE_OBJECT_TYPES);

/** What an error says is allowed for a subsystem object type. */
export const MO_CHANGE_WORDS_ALLOWED = `one of ${MO_CHANGE_OBJECT_TYPES.join(', ')} (OS2mo's AMQP subsystem)`;

/** True for an object type of OS2mo's AMQP subsystem (`isMoChangeObjectType('person') === true`). */
export function isMoChangeObjectType(value: unknown): value is MoChangeObjectType {
  return typeof value === 'string' && CHANGE_WORDS.has(value);
}

/**
 * The subsystem's object type for a legacy one: the same word, except
 * `employee` (`person`) and `it` (`ituser`), as OS2mo names them.
 */
export function moChangeObjectTypeOf(objectType: MoObjectType): MoChangeObjectType {
  if (objectType === 'employee') return 'person';
  if (objectType === 'it') return 'ituser';
  return objectType;
}

/** `seed` (the default) or `os2mo`. */
export type MoVocabulary = keyof typeof MO_VOCABULARIES;

export const MO_VOCABULARY_NAMES = Object.keys(MO_VOCABULARIES) as readonly MoVocabulary[];

/** Every object type of either vocabulary: what readers accept. */
export const MO_OBJECT_TYPES = MO_OS2MO_OBJECT_TYPES;

/** Every action of either vocabulary: what readers accept. */
export const MO_ACTIONS = [...MO_SEED_ACTIONS, 'edit', 'terminate', 'refresh'] as const;

export type MoService = (typeof MO_SERVICES)[number];
/** An object type of either vocabulary. */
export type MoObjectType = (typeof MO_OBJECT_TYPES)[number];
/** An action of either vocabulary. */
export type MoAction = (typeof MO_ACTIONS)[number];

/** A full routing key of either vocabulary, e.g. `'employee.engagement.create'`. */
export type MoRoutingKey = `${MoService}.${MoObjectType}.${MoAction}`;

/** The object types of one vocabulary: `MoObjectTypeOf<'seed'>`. */
export type MoObjectTypeOf<V extends MoVocabulary> = (typeof MO_VOCABULARIES)[V]['objectTypes'][number];
/** The actions of one vocabulary: `MoActionOf<'os2mo'>`. */
export type MoActionOf<V extends MoVocabulary> = (typeof MO_VOCABULARIES)[V]['actions'][number];

/**
 * Declaration merging tells the compiler which vocabulary this application
 * publishes in, so a word of the other one is a compile error in `publish()` and
 * `@MoEvent` (the run-time check follows `AMQP__VOCABULARY` either way):
 *
 * ```ts
 * declare module 'nestjs-mo-amqp' {
 *   interface MoVocabularyRegister { vocabulary: 'os2mo' }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by users' declaration merging
export interface MoVocabularyRegister {}

/** The registered vocabulary (`MoVocabularyRegister`), or both when none is registered. */
export type MoPublishVocabulary = MoVocabularyRegister extends { vocabulary: infer V extends MoVocabulary }
  ? V
  : MoVocabulary;

// Sets give the runtime checks O(1) look-ups without widening the tuples' types.
interface WordSets {
  readonly service: ReadonlySet<string>;
  readonly objectType: ReadonlySet<string>;
  readonly action: ReadonlySet<string>;
}

const ANY_WORDS: WordSets = {
  service: new Set(MO_SERVICES),
  objectType: new Set(MO_OBJECT_TYPES),
  action: new Set(MO_ACTIONS),
};

/** Every word of either vocabulary, as `MO_VOCABULARIES` lists one vocabulary's. */
const ANY_LISTS = { services: MO_SERVICES, objectTypes: MO_OBJECT_TYPES, actions: MO_ACTIONS } as const;

const VOCABULARY_WORDS: Readonly<Record<MoVocabulary, WordSets>> = {
  seed: wordSets('seed'),
  os2mo: wordSets('os2mo'),
};

function wordSets(vocabulary: MoVocabulary): WordSets {
  const words = MO_VOCABULARIES[vocabulary];
  return { service: new Set(words.services), objectType: new Set(words.objectTypes), action: new Set(words.actions) };
}

/** Runtime check for JavaScript callers: `isMoService('employee') === true`. */
export function isMoService(value: unknown): value is MoService {
  return typeof value === 'string' && ANY_WORDS.service.has(value);
}

/** True for an object type of either vocabulary. */
export function isMoObjectType(value: unknown): value is MoObjectType {
  return typeof value === 'string' && ANY_WORDS.objectType.has(value);
}

/** True for an action of either vocabulary. */
export function isMoAction(value: unknown): value is MoAction {
  return typeof value === 'string' && ANY_WORDS.action.has(value);
}

/** True when all three words belong to `vocabulary` (the publish path's quick check). */
export function inMoVocabulary(
  vocabulary: MoVocabulary,
  service: unknown,
  objectType: unknown,
  action: unknown,
): boolean {
  const words = VOCABULARY_WORDS[vocabulary];
  return (
    typeof service === 'string' &&
    typeof objectType === 'string' &&
    typeof action === 'string' &&
    words.service.has(service) &&
    words.objectType.has(objectType) &&
    words.action.has(action)
  );
}

type WordField = 'service' | 'objectType' | 'action';

/** A word of a routing key that is not in the vocabulary: which field, how to name it, what is allowed. */
export interface MoWordProblem {
  readonly field: WordField;
  /** The field as a message names it: `service`, `object type`, `action`. */
  readonly name: string;
  readonly value: unknown;
  readonly allowed: readonly string[];
  /** The vocabulary the check used; undefined when either was accepted. */
  readonly vocabulary?: MoVocabulary;
  /** The other vocabulary, when the word is one of its words. */
  readonly foundIn?: MoVocabulary;
}

const WORDS: readonly { field: WordField; name: string; list: 'services' | 'objectTypes' | 'actions' }[] = [
  { field: 'service', name: 'service', list: 'services' },
  { field: 'objectType', name: 'object type', list: 'objectTypes' },
  { field: 'action', name: 'action', list: 'actions' },
];

/**
 * The first of the three words outside `vocabulary` (`'any'`: outside both), or
 * `undefined` when all are in it. With `missingMeansAny`, a word left undefined
 * passes (a binding's `*`).
 */
export function findBadMoWord(
  words: { readonly service?: unknown; readonly objectType?: unknown; readonly action?: unknown },
  vocabulary: MoVocabulary | 'any',
  missingMeansAny = false,
): MoWordProblem | undefined {
  const sets = vocabulary === 'any' ? ANY_WORDS : VOCABULARY_WORDS[vocabulary];
  for (const { field, name, list } of WORDS) {
    const value = words[field];
    if (missingMeansAny && value === undefined) continue;
    if (typeof value === 'string' && sets[field].has(value)) continue;
    if (vocabulary === 'any') return { field, name, value, allowed: ANY_LISTS[list] };
    const foundIn = MO_VOCABULARY_NAMES.find(
      (other) => other !== vocabulary && typeof value === 'string' && VOCABULARY_WORDS[other][field].has(value),
    );
    return { field, name, value, allowed: MO_VOCABULARIES[vocabulary][list], vocabulary, ...(foundIn && { foundIn }) };
  }
  return undefined;
}

/**
 * What a problem allows, in words: `one of create, update, delete (the seed
 * vocabulary, AMQP__VOCABULARY=seed); "edit" is a word of the os2mo vocabulary: …`.
 */
export function describeAllowedWords(problem: MoWordProblem): string {
  const list = `one of ${problem.allowed.join(', ')}`;
  if (!problem.vocabulary) return `${list} (either vocabulary)`;
  const configured = `${list} (the ${problem.vocabulary} vocabulary, AMQP__VOCABULARY=${problem.vocabulary})`;
  if (!problem.foundIn) return configured;
  return (
    `${configured}; ${JSON.stringify(problem.value)} is a word of the ${problem.foundIn} vocabulary: ` +
    `set AMQP__VOCABULARY=${problem.foundIn} (option vocabulary) to publish it`
  );
}
