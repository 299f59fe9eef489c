import { resolve } from 'node:path';
import { resolveMoAmqpOptions } from '../../lib/config/mo-amqp-options.schema';
import { durablePath, startedWithoutBrokerWarning, startsWithoutBroker } from '../../lib/runtime/start-without-broker';

const OUTBOX = { outbox: 'postgres', outboxUrl: 'postgres://app:pw@db:5432/mo' } as const;

describe('startWithoutBroker', () => {
  it.each([
    ['auto', {}, true],
    ['auto', { spoolDir: 'off' }, false],
    ['auto', { spoolDir: 'off', ...OUTBOX }, true],
    ['true', { spoolDir: 'off' }, true],
    ['false', {}, false],
    ['false', { ...OUTBOX }, false],
  ] as const)('%s with %j: starts without the broker = %p', (startWithoutBroker, given, expected) => {
    expect(startsWithoutBroker(resolveMoAmqpOptions({ startWithoutBroker, ...given }))).toBe(expected);
  });

  it('names where the events wait: the spool directory, the outbox table, or nothing', () => {
    expect(durablePath(resolveMoAmqpOptions({ spoolDir: 'spool' }))).toBe(`the spool in ${resolve('spool')}`);
    expect(durablePath(resolveMoAmqpOptions({ spoolDir: 'off', ...OUTBOX }))).toBe('the outbox table mo_amqp_outbox');
    expect(durablePath(resolveMoAmqpOptions({ spoolDir: 'off' }))).toBeUndefined();
  });

  it('the warning names the broker, the error, where events go and the setting that fails instead', () => {
    const text = startedWithoutBrokerWarning(
      resolveMoAmqpOptions({ spoolDir: 'off', startWithoutBroker: 'true' }),
      'amqp://admin:***@rabbit:5672',
      'connect ECONNREFUSED 10.0.0.1:5672',
    );
    expect(text).toBe(
      'Started without RabbitMQ: amqp://admin:***@rabbit:5672 is unreachable (last error: connect ECONNREFUSED 10.0.0.1:5672). ' +
        'Without the spool or the outbox, publishes fail with MoPublishError until it answers. ' +
        'AMQP__START_WITHOUT_BROKER=true (startWithoutBroker); AMQP__START_WITHOUT_BROKER=false waits for it and fails instead.',
    );
  });
});
