import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MoAmqpModule, MoEvent, MoEventValidationError, MoEventsService } from '../../lib';
import { resolveMoAmqpOptions } from '../../lib/config/mo-amqp-options.schema';
import { MoAmqpRuntime } from '../../lib/runtime/mo-amqp-runtime';
import { CapturingLogger } from '../support/capturing-logger';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const OTHER = 'f494ad89-039d-478e-91f2-a63566554bd6';

// AMQP disabled: publish() validates everything first, then reports `disabled`. No broker needed.
const options = resolveMoAmqpOptions({});
const events = new MoEventsService(new MoAmqpRuntime(options), options);
const publish = (...args: unknown[]) => (events.publish as (...a: unknown[]) => Promise<unknown>)(...args);

async function refusal(args: unknown[]): Promise<MoEventValidationError> {
  const err = await publish(...args).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MoEventValidationError);
  return err as MoEventValidationError;
}

class Options {
  time = '2021-07-27';
}

describe('publish() with hostile input: refused, naming the field, nothing counted as sent', () => {
  it.each<[string, unknown[], string]>([
    [
      'options as a Map (its time would be dropped)',
      ['employee', 'it', 'create', UUID, new Map([['time', '2021-07-27']])],
      'options',
    ],
    ['options as a Date', ['employee', 'it', 'create', UUID, new Date()], 'options'],
    ['options as an array', ['employee', 'it', 'create', UUID, []], 'options'],
    ['options as a class instance', ['employee', 'it', 'create', UUID, new Options()], 'options'],
    ['options as a string', ['employee', 'it', 'create', UUID, '2021-07-27'], 'options'],
    ['options as null', ['employee', 'it', 'create', UUID, null], 'options'],
    ['an unknown option', ['employee', 'it', 'create', UUID, { tiem: '2021-07-27' }], 'options.tiem'],
    ['a service outside the vocabulary', ['person', 'it', 'create', UUID], 'service'],
    ['a routing word with a dot', ['employee', 'it.x', 'create', UUID], 'objectType'],
    ['a routing word with a wildcard', ['employee', '#', 'create', UUID], 'objectType'],
    ['a uuid with a trailing newline', ['employee', 'it', 'create', `${UUID}\n`], 'uuid'],
    ['a uuid as a number', ['employee', 'it', 'create', 42], 'uuid'],
    ['a uuid as an object that prints as one', ['employee', 'it', 'create', { toString: () => UUID }], 'uuid'],
    ['an Invalid Date', ['employee', 'it', 'create', UUID, { time: new Date(NaN) }], 'options.time'],
    ['a time in year 0', ['employee', 'it', 'create', UUID, { time: '0000-01-01' }], 'options.time'],
    [
      'a time with offset seconds',
      ['employee', 'it', 'create', UUID, { time: '2021-07-27T00:00:00+01:00:30' }],
      'options.time',
    ],
    ['a time 10 MB long', ['employee', 'it', 'create', UUID, { time: '2'.repeat(10_000_000) }], 'options.time'],
    ['an object uuid that is not one', ['employee', 'it', 'create', UUID, { objectUuid: 'x' }], 'options.objectUuid'],
  ])('%s', async (_name, args, field) => {
    const before = events.counters;
    const err = await refusal(args);
    expect(err.field).toBe(field);
    expect(err.message.length).toBeLessThan(2_000); // a huge value is cut short, not echoed
    expect(events.counters.invalid).toBe(before.invalid + 1);
    expect(events.counters.disabled).toBe(before.disabled);
  });

  it('refuses a __proto__ key from parsed JSON as an unknown option, instead of reading options through it', async () => {
    const err = await refusal(['employee', 'it', 'create', UUID, JSON.parse('{"__proto__": {"time": "1999-01-01"}}')]);
    expect(err.field).toBe('options.__proto__');
  });
});

describe('an @MoEvent selector with several UUIDs', () => {
  @Injectable()
  class Engagements {
    @MoEvent('employee', 'engagement', 'create', { uuid: (uuids: unknown[]) => uuids as string[] })
    async createMany(uuids: unknown[]): Promise<unknown[]> {
      return uuids;
    }
  }

  it('checks them all before sending any: one bad one, none sent, and the log says which', async () => {
    const publishSpy = jest.spyOn(MoEventsService.prototype, 'publish');
    const logger = new CapturingLogger();
    const app = await Test.createTestingModule({ imports: [MoAmqpModule.forRoot({})], providers: [Engagements] })
      .setLogger(logger)
      .compile();
    await app.init();
    try {
      await app.get(Engagements).createMany([UUID, 'bad', OTHER]);
      expect(publishSpy).not.toHaveBeenCalled();
      expect(logger.text).toContain('uuid[1]: received "bad"');
      expect(logger.text).toContain('none of the 3 is sent');
      await app.get(Engagements).createMany([UUID, OTHER]);
      expect(publishSpy).toHaveBeenCalledTimes(2);
    } finally {
      publishSpy.mockRestore();
      await app.close();
    }
  });
});
