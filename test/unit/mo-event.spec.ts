import { MoEventValidationError } from '../../lib';
import { buildMoEvent } from '../../lib/events/mo-event';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const OBJECT = '5e2a5b2b-8d5e-4c1e-9a53-0b8c2f3d4e5f';
const FIXED_NOW = () => new Date('2019-03-24T13:02:15.132Z');

/** Calls buildMoEvent with loose types, as a JavaScript caller could. */
function build(service: unknown, objectType: unknown, action: unknown, uuid: unknown, options?: unknown, zone = 'UTC') {
  return buildMoEvent(
    service as never,
    objectType as never,
    action as never,
    uuid as never,
    options as never,
    zone,
    FIXED_NOW,
  );
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

  it('adds object_uuid last, and only when given', () => {
    const event = build('org_unit', 'engagement', 'update', UUID, { objectUuid: OBJECT });
    expect(event.body).toBe(
      `{"uuid": "${UUID}", "time": "2019-03-24T13:02:15.132000+00:00", "object_uuid": "${OBJECT}"}`,
    );
    expect(Object.keys(JSON.parse(event.body))).toEqual(['uuid', 'time', 'object_uuid']);
    expect(build('employee', 'it', 'create', UUID, {}).body).not.toContain('object_uuid');
  });

  it('writes UUIDs in lower case', () => {
    const event = build('employee', 'it', 'create', UUID.toUpperCase(), { objectUuid: OBJECT.toUpperCase() });
    expect(event.uuid).toBe(UUID);
    expect(event.body).toContain(`"object_uuid": "${OBJECT}"`);
  });

  it('formats a Date in the configured zone', () => {
    const event = build(
      'employee',
      'engagement',
      'create',
      UUID,
      { time: new Date('2021-07-26T22:00:00Z') },
      'Europe/Copenhagen',
    );
    expect(event.time).toBe('2021-07-27T00:00:00.000000+02:00');
  });

  it('sends an ISO 8601 string unchanged', () => {
    for (const time of [
      '2019-03-24T13:02:15.132025',
      '2021-07-27T00:00:00+02:00',
      '2021-07-27T00:00:00Z',
      '2021-07-27',
    ]) {
      expect(build('employee', 'it', 'create', UUID, { time }).body).toContain(`"time": "${time}"`);
    }
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
    ['options', ['employee', 'it', 'create', UUID, 'now'], 'an object'],
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
      'Invalid MO event service: received "employe"; allowed: one of employee, org_unit',
    );
  });

  it('shortens a huge received value', () => {
    const err = rejection(() => build('employee', 'it', 'create', 'x'.repeat(10_000)));
    expect(err.message.length).toBeLessThan(400);
    expect(err.value).toHaveLength(10_000);
  });
});
