import {
  MO_ACTIONS,
  MO_OBJECT_TYPES,
  MO_OS2MO_ACTIONS,
  MO_OS2MO_OBJECT_TYPES,
  MO_SEED_ACTIONS,
  MO_SEED_OBJECT_TYPES,
  MO_SERVICES,
  MO_VOCABULARIES,
  MoAction,
  MoActionOf,
  MoObjectType,
  MoObjectTypeOf,
  MoService,
  isMoAction,
  isMoObjectType,
  isMoService,
  MO_CHANGE_OBJECT_TYPES,
  isMoChangeObjectType,
} from '../../lib';
import { allMoRoutingKeys, moRoutingKey, parseMoRoutingKey } from '../../lib/events/routing-key';
import { describeAllowedWords, findBadMoWord, moChangeObjectTypeOf } from '../../lib/events/vocabulary';

const SEED_TEN = [
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
];

describe('vocabulary', () => {
  it('holds the seed’s two services, ten object types and three actions', () => {
    expect(MO_SERVICES).toEqual(['employee', 'org_unit']);
    expect(MO_SEED_OBJECT_TYPES).toEqual(SEED_TEN);
    expect(MO_SEED_ACTIONS).toEqual(['create', 'update', 'delete']);
    expect(MO_VOCABULARIES.seed).toEqual({
      services: MO_SERVICES,
      objectTypes: MO_SEED_OBJECT_TYPES,
      actions: MO_SEED_ACTIONS,
      objectUuidRequired: false,
    });
  });

  it('holds OS2mo 2021+’s thirteen object types (rolebinding since 2024) and four actions, object_uuid required', () => {
    expect(MO_OS2MO_OBJECT_TYPES).toEqual([...SEED_TEN, 'kle', 'owner', 'rolebinding']);
    expect(MO_OS2MO_ACTIONS).toEqual(['create', 'edit', 'terminate', 'refresh']);
    expect(MO_VOCABULARIES.os2mo.objectUuidRequired).toBe(true);
  });

  it('holds the sixteen object types of OS2mo’s AMQP subsystem: its fifteen and role, and maps legacy words onto them', () => {
    expect(MO_CHANGE_OBJECT_TYPES).toHaveLength(16);
    expect(new Set(MO_CHANGE_OBJECT_TYPES).size).toBe(16);
    expect(MO_OS2MO_OBJECT_TYPES.map(moChangeObjectTypeOf)).toEqual([
      'address',
      'association',
      'person',
      'engagement',
      'ituser',
      'leave',
      'manager',
      'org_unit',
      'related_unit',
      'role',
      'kle',
      'owner',
      'rolebinding',
    ]);
    for (const word of MO_OS2MO_OBJECT_TYPES) expect(isMoChangeObjectType(moChangeObjectTypeOf(word))).toBe(true);
  });

  it('lists every word of either vocabulary for readers', () => {
    expect(MO_OBJECT_TYPES).toEqual(MO_OS2MO_OBJECT_TYPES);
    expect([...MO_ACTIONS].sort()).toEqual(['create', 'delete', 'edit', 'refresh', 'terminate', 'update']);
  });

  it('rejects a typo at compile time, in either vocabulary', () => {
    // `npm run lint` type-checks this file: each line must stay a type error.
    // @ts-expect-error 'employe' is not a MoService
    const service: MoService = 'employe';
    // @ts-expect-error 'engagment' is in no vocabulary
    const objectType: MoObjectType = 'engagment';
    // @ts-expect-error 'updte' is in no vocabulary
    const action: MoAction = 'updte';
    // @ts-expect-error 'kle' is an os2mo word, not a seed word
    const seedType: MoObjectTypeOf<'seed'> = 'kle';
    // @ts-expect-error 'update' is a seed word, not an os2mo word
    const os2moAction: MoActionOf<'os2mo'> = 'update';
    const both: [MoObjectType, MoAction, MoAction] = ['kle', 'edit', 'update'];
    expect([service, objectType, action, seedType, os2moAction, both]).toHaveLength(6);
  });

  it.each([
    [isMoService, 'employee', true],
    [isMoService, 'org_unit', true],
    [isMoService, 'employe', false],
    [isMoService, 'Employee', false],
    [isMoObjectType, 'related_unit', true],
    [isMoObjectType, 'kle', true],
    [isMoObjectType, 'owner', true],
    [isMoObjectType, 'rolebinding', true],
    [isMoObjectType, 'role', true],
    [isMoObjectType, 'person', false],
    [isMoChangeObjectType, 'person', true],
    [isMoChangeObjectType, 'rolebinding', true],
    [isMoChangeObjectType, 'role', true],
    [isMoChangeObjectType, 'class', true],
    [isMoChangeObjectType, 'employee', false],
    [isMoChangeObjectType, 'it', false],
    [isMoChangeObjectType, 'engagement.create', false],
    [isMoAction, 'delete', true],
    [isMoAction, 'edit', true],
    [isMoAction, 'terminate', true],
    [isMoAction, 'refresh', true],
    [isMoAction, 'remove', false],
  ] as const)('%p(%p) is %p', (check, value, expected) => {
    expect(check(value)).toBe(expected);
  });

  it.each([undefined, null, 1, {}, ['employee'], '*', '#', ''])('rejects the non-word %p at run time', (value) => {
    expect(isMoService(value)).toBe(false);
    expect(isMoObjectType(value)).toBe(false);
    expect(isMoAction(value)).toBe(false);
  });

  it('finds the word outside a vocabulary, and the vocabulary that has it', () => {
    const seed = findBadMoWord({ service: 'employee', objectType: 'owner', action: 'create' }, 'seed');
    expect(seed).toMatchObject({ field: 'objectType', value: 'owner', vocabulary: 'seed', foundIn: 'os2mo' });
    const os2mo = findBadMoWord({ service: 'employee', objectType: 'it', action: 'delete' }, 'os2mo');
    expect(os2mo).toMatchObject({ field: 'action', vocabulary: 'os2mo', foundIn: 'seed' });
    const nowhere = findBadMoWord({ service: 'employee', objectType: 'it', action: 'remove' }, 'seed');
    expect(nowhere?.foundIn).toBeUndefined();
    expect(describeAllowedWords(nowhere!)).toBe(
      'one of create, update, delete (the seed vocabulary, AMQP__VOCABULARY=seed)',
    );
    expect(findBadMoWord({ service: 'employee', objectType: 'kle', action: 'update' }, 'any')).toBeUndefined();
    expect(findBadMoWord({ action: 'edit' }, 'seed', true)).toMatchObject({ field: 'action', foundIn: 'os2mo' });
  });
});

describe('routing keys', () => {
  it('joins the three words with dots', () => {
    expect(moRoutingKey('employee', 'it', 'create')).toBe('employee.it.create');
  });

  it('lists the seed’s 60 and OS2mo’s 104 distinct routing keys', () => {
    const keys = allMoRoutingKeys();
    expect(keys).toHaveLength(60);
    expect(new Set(keys).size).toBe(60);
    expect(keys).toContain('org_unit.related_unit.delete');
    const os2mo = allMoRoutingKeys('os2mo');
    expect(new Set(os2mo).size).toBe(104);
    expect(os2mo).toContain('org_unit.owner.refresh');
    expect(os2mo).toContain('employee.rolebinding.edit');
    expect(os2mo).toContain('org_unit.role.create');
    expect(os2mo).not.toContain('employee.it.update');
  });

  it('parses a routing key of either vocabulary back into its words', () => {
    expect(parseMoRoutingKey('org_unit.engagement.update')).toEqual({
      service: 'org_unit',
      objectType: 'engagement',
      action: 'update',
    });
    expect(parseMoRoutingKey('employee.kle.terminate')).toEqual({
      service: 'employee',
      objectType: 'kle',
      action: 'terminate',
    });
    for (const key of [...allMoRoutingKeys('seed'), ...allMoRoutingKeys('os2mo')]) {
      expect(parseMoRoutingKey(key)).toBeDefined();
    }
  });

  it.each([
    'employee.it',
    'employee.it.create.extra',
    '#.it.create',
    'employee.*.create',
    'Employee.it.create',
    'employee.it.remove',
    'employee..create',
    '',
    42,
  ])('refuses %p', (key) => {
    expect(parseMoRoutingKey(key)).toBeUndefined();
  });
});
