import {
  MO_ACTIONS,
  MO_OBJECT_TYPES,
  MO_SERVICES,
  MoObjectType,
  MoService,
  isMoAction,
  isMoObjectType,
  isMoService,
} from '../../lib';
import { allMoRoutingKeys, moRoutingKey, parseMoRoutingKey } from '../../lib/events/routing-key';

describe('vocabulary', () => {
  it('holds the seed’s two services, ten object types and three actions', () => {
    expect(MO_SERVICES).toEqual(['employee', 'org_unit']);
    expect(MO_OBJECT_TYPES).toEqual([
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
    ]);
    expect(MO_ACTIONS).toEqual(['create', 'update', 'delete']);
  });

  it('rejects a typo at compile time', () => {
    // `npm run lint` type-checks this file: each line must stay a type error.
    // @ts-expect-error 'employe' is not a MoService
    const service: MoService = 'employe';
    // @ts-expect-error 'kle' is a later OS2mo object type, not in this vocabulary
    const objectType: MoObjectType = 'kle';
    expect([service, objectType]).toEqual(['employe', 'kle']);
  });

  it.each([
    [isMoService, 'employee', true],
    [isMoService, 'org_unit', true],
    [isMoService, 'employe', false],
    [isMoService, 'Employee', false],
    [isMoObjectType, 'related_unit', true],
    [isMoObjectType, 'kle', false],
    [isMoObjectType, 'rolebinding', false],
    [isMoAction, 'delete', true],
    [isMoAction, 'edit', false],
    [isMoAction, 'terminate', false],
  ] as const)('%p(%p) is %p', (check, value, expected) => {
    expect(check(value)).toBe(expected);
  });

  it.each([undefined, null, 1, {}, ['employee'], '*', '#', ''])('rejects the non-word %p at run time', (value) => {
    expect(isMoService(value)).toBe(false);
    expect(isMoObjectType(value)).toBe(false);
    expect(isMoAction(value)).toBe(false);
  });
});

describe('routing keys', () => {
  it('joins the three words with dots', () => {
    expect(moRoutingKey('employee', 'it', 'create')).toBe('employee.it.create');
  });

  it('lists all 60 distinct routing keys', () => {
    const keys = allMoRoutingKeys();
    expect(keys).toHaveLength(60);
    expect(new Set(keys).size).toBe(60);
    expect(keys).toContain('org_unit.related_unit.delete');
  });

  it('parses a routing key back into its words', () => {
    expect(parseMoRoutingKey('org_unit.engagement.update')).toEqual({
      service: 'org_unit',
      objectType: 'engagement',
      action: 'update',
    });
  });

  it.each([
    'employee.it',
    'employee.it.create.extra',
    '#.it.create',
    'employee.*.create',
    'Employee.it.create',
    'employee.it.edit',
    'employee..create',
    '',
    42,
  ])('refuses %p', (key) => {
    expect(parseMoRoutingKey(key)).toBeUndefined();
  });
});
