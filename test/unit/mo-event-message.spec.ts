import type { ConsumeMessage } from 'amqplib';
import { MO_HEADER_ATTEMPT, MO_HEADER_ROUTING_KEY, MoEventParseError, parseMoEvent } from '../../lib';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const OBJECT = '5e2a5b2b-8d5e-4c1e-9a53-0b8c2f3d4e5f';

function delivery(
  body: string | Buffer,
  routingKey = 'employee.engagement.create',
  {
    headers = {},
    redelivered = false,
    messageId = 'm-1',
    exchange = 'os2mo',
  }: { headers?: Record<string, unknown>; redelivered?: boolean; messageId?: string; exchange?: string } = {},
): ConsumeMessage {
  return {
    content: Buffer.isBuffer(body) ? body : Buffer.from(body),
    fields: { deliveryTag: 1, redelivered, exchange, routingKey, consumerTag: 'c' },
    properties: { headers, messageId, contentType: 'application/json' } as ConsumeMessage['properties'],
  };
}

function parseError(message: ConsumeMessage): MoEventParseError {
  try {
    parseMoEvent(undefined, message);
  } catch (err) {
    expect(err).toBeInstanceOf(MoEventParseError);
    return err as MoEventParseError;
  }
  throw new Error('expected a MoEventParseError');
}

describe('parseMoEvent', () => {
  it('gives a typed, validated event', () => {
    const event = parseMoEvent(
      undefined,
      delivery(`{"uuid": "${UUID}", "time": "2021-07-27T00:00:00+02:00", "object_uuid": "${OBJECT}"}`),
    );
    expect(event).toEqual({
      uuid: UUID,
      time: new Date('2021-07-26T22:00:00Z'),
      timeText: '2021-07-27T00:00:00+02:00',
      routingKey: 'employee.engagement.create',
      service: 'employee',
      objectType: 'engagement',
      action: 'create',
      objectUuid: OBJECT,
      messageId: 'm-1',
      redelivered: false,
    });
  });

  it('reads an OS2mo 2021+ message: its words, object_uuid first, no properties at all', () => {
    const message: ConsumeMessage = {
      content: Buffer.from(`{"object_uuid": "${OBJECT}", "time": "2021-07-27T00:00:00+02:00", "uuid": "${UUID}"}`),
      fields: {
        deliveryTag: 1,
        redelivered: false,
        exchange: 'os2mo',
        routingKey: 'org_unit.kle.terminate',
        consumerTag: 'c',
      },
      properties: {} as ConsumeMessage['properties'],
    };
    expect(parseMoEvent(undefined, message)).toEqual({
      uuid: UUID,
      time: new Date('2021-07-26T22:00:00Z'),
      timeText: '2021-07-27T00:00:00+02:00',
      routingKey: 'org_unit.kle.terminate',
      service: 'org_unit',
      objectType: 'kle',
      action: 'terminate',
      objectUuid: OBJECT,
      redelivered: false,
    });
  });

  it('reads the seed’s naive example in the zone asked for, and accepts what golevelup already parsed', () => {
    const message = delivery('ignored');
    const event = parseMoEvent({ uuid: UUID.toUpperCase(), time: '2019-03-24T13:02:15.132025' }, message, {
      timeZone: 'Europe/Copenhagen',
    });
    expect(event.uuid).toBe(UUID);
    expect(event.time.toISOString()).toBe('2019-03-24T12:02:15.132Z');
    expect(event.objectUuid).toBeUndefined();
  });

  it('ignores fields it does not know, as later OS2mo versions add some', () => {
    expect(parseMoEvent(undefined, delivery(`{"uuid": "${UUID}", "time": "2021-07-27", "extra": 1}`)).uuid).toBe(UUID);
  });

  it('reads a retried copy as the original: its routing key, and redelivered', () => {
    const message = delivery(`{"uuid": "${UUID}", "time": "2021-07-27"}`, 'my-queue', {
      headers: { [MO_HEADER_ROUTING_KEY]: 'org_unit.address.delete', [MO_HEADER_ATTEMPT]: 2 },
      exchange: '', // copies are sent to a queue through the default exchange
    });
    expect(parseMoEvent(undefined, message)).toMatchObject({
      routingKey: 'org_unit.address.delete',
      redelivered: true,
    });
  });

  it.each([
    ['not JSON', 'uuid=abc', 'employee.it.create', 'body', 'JSON'],
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'employee.it.create', 'body', 'UTF-8 JSON'],
    ['empty', '', 'employee.it.create', 'body', 'JSON'],
    ['an array', `["${UUID}"]`, 'employee.it.create', 'body', 'a JSON object'],
    ['a string', `"${UUID}"`, 'employee.it.create', 'body', 'a JSON object'],
    ['null', 'null', 'employee.it.create', 'body', 'a JSON object'],
    ['without uuid', '{"time": "2021-07-27"}', 'employee.it.create', 'uuid', 'canonical 8-4-4-4-12'],
    ['a numeric uuid', '{"uuid": 42, "time": "2021-07-27"}', 'employee.it.create', 'uuid', 'canonical'],
    ['a malformed uuid', '{"uuid": "c390b9a2", "time": "2021-07-27"}', 'employee.it.create', 'uuid', 'canonical'],
    ['without time', `{"uuid": "${UUID}"}`, 'employee.it.create', 'time', 'ISO 8601'],
    ['a malformed time', `{"uuid": "${UUID}", "time": "yesterday"}`, 'employee.it.create', 'time', 'ISO 8601'],
    ['an impossible date', `{"uuid": "${UUID}", "time": "2021-02-30"}`, 'employee.it.create', 'time', 'ISO 8601'],
    ['a numeric time', `{"uuid": "${UUID}", "time": 1627336800}`, 'employee.it.create', 'time', 'ISO 8601'],
    [
      'a malformed object_uuid',
      `{"uuid": "${UUID}", "time": "2021-07-27", "object_uuid": "x"}`,
      'employee.it.create',
      'object_uuid',
      'canonical',
    ],
    [
      'an unknown object type',
      `{"uuid": "${UUID}", "time": "2021-07-27"}`,
      'employee.person.create',
      'routing key',
      'either MO vocabulary',
    ],
    [
      'an unknown action',
      `{"uuid": "${UUID}", "time": "2021-07-27"}`,
      'employee.it.remove',
      'routing key',
      'either MO vocabulary',
    ],
    [
      'two words',
      `{"uuid": "${UUID}", "time": "2021-07-27"}`,
      'employee.create',
      'routing key',
      'either MO vocabulary',
    ],
  ])('refuses a message that is %s, naming the field', (_kind, body, routingKey, field, allowed) => {
    const err = parseError(delivery(body, routingKey));
    expect(err.field).toBe(field);
    expect(err.allowed).toContain(allowed);
    expect(err.message).toContain(`Malformed MO event on "${routingKey}": ${field}: received `);
  });
});
