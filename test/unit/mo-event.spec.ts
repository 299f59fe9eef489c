import { MoEventValidationError, MoVocabulary, allMoRoutingKeys } from '../../lib';
import { buildMoEvent } from '../../lib/events/mo-event';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const OBJECT = '5e2a5b2b-8d5e-4c1e-9a53-0b8c2f3d4e5f';
const FIXED_NOW = () => new Date('2019-03-24T13:02:15.132Z');

/** Calls buildMoEvent with loose types, as a JavaScript caller could. */
function build(
  service: unknown,
  objectType: unknown,
  action: unknown,
  uuid: unknown,
  options?: unknown,
  zone = 'UTC',
  vocabulary: MoVocabulary = 'seed',
) {
  return buildMoEvent(
    service as never,
    objectType as never,
    action as never,
    uuid as never,
    options as never,
    { timeZone: zone, vocabulary },
    FIXED_NOW,
  );
}

/** The same in the os2mo vocabulary. */
function buildOs2mo(routingKey: string, uuid: unknown, options?: unknown, zone = 'UTC') {
  const [service, objectType, action] = routingKey.split('.');
  return build(service, objectType, action, uuid, options, zone, 'os2mo');
}

function rejection(fn: () => unknown): MoEventValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MoEventValidationError);
    return err as MoEventValidationError;
  }
  throw new Error('expected a MoEventValidationError');
}

describe('buildMoEvent', () => {
  it('builds the routing key and the exact body bytes, keys in contract order', () => {
    const event = build('employee', 'it', 'create', UUID);
    expect(event.routingKey).toBe('employee.it.create');
    expect(event.body).toBe(`{"uuid": "${UUID}", "time": "2019-03-24T13:02:15.132000+00:00"}`);
    expect(JSON.parse(event.body)).toEqual({ uuid: UUID, time: '2019-03-24T13:02:15.132000+00:00' });
  });

  it('adds object_uuid between uuid and time, as OS2mo and ramqp order them, only when given', () => {
    const event = build('org_unit', 'engagement', 'update', UUID, { objectUuid: OBJECT });
    expect(event.body).toBe(
      `{"uuid": "${UUID}", "object_uuid": "${OBJECT}", "time": "2019-03-24T13:02:15.132000+00:00"}`,
    );
    expect(Object.keys(JSON.parse(event.body))).toEqual(['uuid', 'object_uuid', 'time']);
    expect(build('employee', 'it', 'create', UUID, {}).body).not.toContain('object_uuid');
  });

  it('writes UUIDs in lower case', () => {
    const event = build('employee', 'it', 'create', UUID.toUpperCase(), { objectUuid: OBJECT.toUpperCase() });
    expect(event.uuid).toBe(UUID);
    expect(event.body).toContain(`"object_uuid": "${OBJECT}"`);
  });

  it('formats a Date in the configured zone as Python does: no fraction when it is zero', () => {
    const time = (date: string) =>
      build('employee', 'engagement', 'create', UUID, { time: new Date(date) }, 'Europe/Copenhagen').time;
    expect(time('2021-07-26T22:00:00Z')).toBe('2021-07-27T00:00:00+02:00');
    expect(time('2021-01-26T23:00:00.001Z')).toBe('2021-01-27T00:00:00.001000+01:00');
  });

  it('refuses a Date at which the zone’s offset has seconds (pydantic cannot read them)', () => {
    const err = rejection(() =>
      build('employee', 'it', 'create', UUID, { time: new Date('1890-06-01T12:00:00Z') }, 'Europe/Copenhagen'),
    );
    expect(err.field).toBe('options.time');
    expect(err.allowed).toMatch(/then it was \+00:5\d:\d\d/); // local mean time, by the zone data
  });

  it.each([
    ['2019-03-24T13:02:15.132025', '2019-03-24T13:02:15.132025'],
    ['2021-07-27T00:00:00+02:00', '2021-07-27T00:00:00+02:00'],
    ['2021-07-27T00:00:00Z', '2021-07-27T00:00:00+00:00'],
    ['2021-07-27T00:00:00-00:00', '2021-07-27T00:00:00+00:00'],
    ['2021-07-27T00:00:00+0200', '2021-07-27T00:00:00+02:00'],
    ['2021-07-27T00:00:00+02', '2021-07-27T00:00:00+02:00'],
    ['2021-07-27T00:00:00+02:00:00', '2021-07-27T00:00:00+02:00'],
    ['2021-07-27T00:00:00-0930', '2021-07-27T00:00:00-09:30'],
    ['2021-07-27T00:00:00.1+02:00', '2021-07-27T00:00:00.100000+02:00'],
    ['2021-07-27T00:00:00.000+02:00', '2021-07-27T00:00:00+02:00'],
    ['2021-07-27T00:00:00.123456000Z', '2021-07-27T00:00:00.123456+00:00'],
    ['2021-07-27 10:30', '2021-07-27T10:30:00'],
    ['2021-07-27T10:30+01:00', '2021-07-27T10:30:00+01:00'],
    ['2021-07-27', '2021-07-27T00:00:00+00:00'],
  ])('writes the time string %p as %p: same instant and offset, one shape', (time, written) => {
    expect(build('employee', 'it', 'create', UUID, { time }).body).toContain(`"time": "${written}"`);
  });

  it('writes a bare date as midnight in the configured zone, as OS2mo does', () => {
    const time = (date: string) => build('employee', 'it', 'create', UUID, { time: date }, 'Europe/Copenhagen').time;
    expect(time('2021-07-27')).toBe('2021-07-27T00:00:00+02:00');
    expect(time('2021-01-27')).toBe('2021-01-27T00:00:00+01:00');
  });

  it.each(['2021-07-27T00:00:00+01:30:15', '2021-07-27T00:00:00.123456789+02:00', '2021-07-27T00:00:00.1234567Z'])(
    'refuses %p: the one shape cannot hold it without changing the time',
    (time) => {
      const err = rejection(() => build('employee', 'it', 'create', UUID, { time }));
      expect(err.field).toBe('options.time');
      expect(err.allowed).toContain('whole minutes');
      expect(err.allowed).toContain('at most 6 fraction digits');
    },
  );

  describe('in the os2mo vocabulary', () => {
    it('publishes all 104 of OS2mo’s routing keys, rolebinding among them', () => {
      const keys = allMoRoutingKeys('os2mo');
      expect(keys).toHaveLength(104);
      expect(keys).toContain('org_unit.rolebinding.terminate');
      for (const key of keys) expect(buildOs2mo(key, UUID, { objectUuid: OBJECT }).routingKey).toBe(key);
    });

    it('writes the body byte for byte as OS2mo did', () => {
      const event = buildOs2mo(
        'employee.engagement.edit',
        UUID,
        { objectUuid: OBJECT, time: new Date('2021-07-26T22:00:00Z') },
        'Europe/Copenhagen',
      );
      // json.dumps({"uuid": …, "object_uuid": …, "time": "2021-07-27T00:00:00+02:00"})
      expect(event.body).toBe(`{"uuid": "${UUID}", "object_uuid": "${OBJECT}", "time": "2021-07-27T00:00:00+02:00"}`);
    });

    it('requires object_uuid, naming objectUuid', () => {
      const err = rejection(() => buildOs2mo('employee.engagement.edit', UUID));
      expect(err.field).toBe('options.objectUuid');
      expect(err.message).toContain('objectUuid');
      expect(err.allowed).toContain('os2mo vocabulary');
    });

    it('refuses a seed word, saying which vocabulary has it', () => {
      const err = rejection(() => buildOs2mo('employee.engagement.update', UUID, { objectUuid: OBJECT }));
      expect(err.field).toBe('action');
      expect(err.allowed).toBe(
        'one of create, edit, terminate, refresh (the os2mo vocabulary, AMQP__VOCABULARY=os2mo); ' +
          '"update" is a word of the seed vocabulary: set AMQP__VOCABULARY=seed (option vocabulary) to publish it',
      );
    });
  });

  it('refuses an os2mo word in the seed vocabulary, saying which vocabulary has it', () => {
    const err = rejection(() => build('employee', 'kle', 'create', UUID));
    expect(err.field).toBe('objectType');
    expect(err.allowed).toContain('(the seed vocabulary, AMQP__VOCABULARY=seed)');
    expect(err.allowed).toContain('"kle" is a word of the os2mo vocabulary: set AMQP__VOCABULARY=os2mo');
  });

  it('defaults the time to now', () => {
    expect(build('employee', 'it', 'create', UUID).time).toBe('2019-03-24T13:02:15.132000+00:00');
  });

  it.each([
    ['service', ['employe', 'it', 'create', UUID], 'one of employee, org_unit'],
    ['service', ['#', 'it', 'create', UUID], 'one of employee, org_unit'],
    [
      'objectType',
      ['employee', 'kle', 'create', UUID],
      'one of address, association, employee, engagement, it, leave, manager, org_unit, related_unit, role',
    ],
    ['objectType', ['employee', '*', 'create', UUID], 'one of address'],
    ['action', ['employee', 'it', 'edit', UUID], 'one of create, update, delete'],
    ['action', ['employee', 'it', 'create.x', UUID], 'one of create, update, delete'],
    ['uuid', ['employee', 'it', 'create', 'not-a-uuid'], 'canonical 8-4-4-4-12'],
    ['uuid', ['employee', 'it', 'create', UUID.replace(/-/g, '')], 'canonical 8-4-4-4-12'],
    ['uuid', ['employee', 'it', 'create', `{${UUID}}`], 'canonical 8-4-4-4-12'],
    ['uuid', ['employee', 'it', 'create', undefined], 'canonical 8-4-4-4-12'],
    ['options', ['employee', 'it', 'create', UUID, 'now'], 'a plain object'],
    ['options', ['employee', 'it', 'create', UUID, new Map([['time', '2021-07-27']])], 'a plain object'],
    ['options', ['employee', 'it', 'create', UUID, new Date()], 'a plain object'],
    ['options', ['employee', 'it', 'create', UUID, []], 'a plain object'],
    ['action', ['employee', 'it', 'update', UUID, { objectUuid: OBJECT }, 'UTC', 'os2mo'], 'AMQP__VOCABULARY=seed'],
    ['options.time', ['employee', 'it', 'create', UUID, { time: '24/03/2019' }], 'ISO 8601'],
    ['options.time', ['employee', 'it', 'create', UUID, { time: '2019-02-29T00:00:00' }], 'ISO 8601'],
    ['options.time', ['employee', 'it', 'create', UUID, { time: 1553432535 }], 'ISO 8601'],
    ['options.time', ['employee', 'it', 'create', UUID, { time: new Date('nonsense') }], 'a valid Date'],
    [
      'options.time',
      ['employee', 'it', 'create', UUID, { time: new Date('+010000-01-01T00:00:00Z') }],
      'years 0001-9999',
    ],
    ['options.objectUuid', ['employee', 'it', 'create', UUID, { objectUuid: '1234' }], 'canonical 8-4-4-4-12'],
    [
      'options.object_uuid',
      ['employee', 'it', 'create', UUID, { object_uuid: OBJECT }],
      'the options are time and objectUuid',
    ],
  ])('rejects a bad %s, naming the field, the value and what is allowed', (field, args, allowed) => {
    const err = rejection(() => (build as (...a: unknown[]) => unknown)(...args));
    expect(err.field).toBe(field);
    expect(err.allowed).toContain(allowed);
    expect(err.message).toContain(`Invalid MO event ${field}: received `);
    expect(err.message).toContain(allowed);
  });

  it('quotes the received value in the message', () => {
    expect(rejection(() => build('employe', 'it', 'create', UUID)).message).toBe(
      'Invalid MO event service: received "employe"; allowed: one of employee, org_unit ' +
        '(the seed vocabulary, AMQP__VOCABULARY=seed)',
    );
  });

  it('shortens a huge received value', () => {
    const err = rejection(() => build('employee', 'it', 'create', 'x'.repeat(10_000)));
    expect(err.message.length).toBeLessThan(400);
    expect(err.value).toHaveLength(10_000);
  });
});
