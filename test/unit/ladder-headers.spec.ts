import type { ConsumeMessage } from 'amqplib';
import { DUE_HEADER, EXCHANGE_HEADER, META_HEADER, ROUTING_KEY_HEADER } from '../../lib/delay/delay-ladder';
import { MoEventParseError } from '../../lib/errors/mo-event-parse.error';
import { metaOf, readLadderHeaders } from '../../lib/delay/ladder-headers';

function fromDue(headers: Record<string, unknown>): ConsumeMessage {
  return {
    content: Buffer.from('{}'),
    fields: { deliveryTag: 1, redelivered: false, exchange: 'agent.route.03', routingKey: '', consumerTag: 'c' },
    properties: { headers } as ConsumeMessage['properties'],
  };
}

const GOOD = {
  [DUE_HEADER]: 1_700_000_000_000,
  [ROUTING_KEY_HEADER]: 'employee.engagement.create',
  [EXCHANGE_HEADER]: 'os2mo',
  [META_HEADER]: '{}',
};

describe('readLadderHeaders', () => {
  it('reads where and when a ladder copy goes', () => {
    expect(readLadderHeaders(fromDue(GOOD))).toEqual({
      due: 1_700_000_000_000,
      routingKey: 'employee.engagement.create',
      exchange: 'os2mo',
      meta: {},
    });
  });

  it('takes back any delivery mode the original had, as metaOf wrote it (0 included)', () => {
    const meta = JSON.stringify(metaOf({ deliveryMode: 0, expiration: '60000' } as ConsumeMessage['properties']));
    expect(readLadderHeaders(fromDue({ ...GOOD, [META_HEADER]: meta })).meta).toEqual({
      deliveryMode: 0,
      expiration: '60000',
    });
  });

  it.each([
    [META_HEADER, '{'],
    [META_HEADER, 'null'],
    [META_HEADER, '{"expiration":"x"}'],
    [META_HEADER, '{"deliveryMode":256}'],
    [META_HEADER, '{"other":1}'],
    [ROUTING_KEY_HEADER, 'evil.routing.key'],
    [DUE_HEADER, 'soon'],
    [DUE_HEADER, 1.5],
    [EXCHANGE_HEADER, 7],
  ])('refuses %s = %j, naming the header and the routing key it stands for', (header, value) => {
    let err: unknown;
    try {
      readLadderHeaders(fromDue({ ...GOOD, [header]: value }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MoEventParseError);
    expect((err as MoEventParseError).field).toBe(`header ${header}`);
    const key = header === ROUTING_KEY_HEADER ? 'evil.routing.key' : 'employee.engagement.create';
    expect((err as Error).message).toContain(`Malformed MO event on "${key}"`);
  });
});
