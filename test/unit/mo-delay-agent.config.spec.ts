import { MoAmqpConfigError } from '../../lib';
import { loadMoDelayAgentOptionsFromEnv, resolveMoDelayAgentOptions } from '../../lib/delay/mo-delay-agent.config';

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MoAmqpConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a MoAmqpConfigError');
}

describe('delay agent options, checked like the module options', () => {
  it('takes the default for each option left out or undefined, and freezes the result', () => {
    const resolved = resolveMoDelayAgentOptions({ prefix: undefined, prefetch: 1 });
    expect(resolved).toEqual({ prefix: 'mo-delay-agent', queueType: 'classic', prefetch: 1, holdMs: 60_000 });
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(resolveMoDelayAgentOptions({ prefix: 'p'.repeat(200), prefetch: 65_535 }).prefetch).toBe(65_535);
  });

  it('lists every problem at once, unknown options first, named by option', () => {
    expect(
      message(() =>
        resolveMoDelayAgentOptions({
          prefix: 'amq.x',
          queueType: 'stream',
          prefetch: 0,
          holdMs: 1.5,
          extra: 1,
        } as never),
      ),
    ).toBe(
      'Invalid AMQP configuration:\n' +
        '  - extra: received 1; allowed: no such option; the options are prefix, queueType, prefetch, holdMs\n' +
        '  - prefix: received "amq.x"; allowed: 1-200 letters, digits, "-", "_", "." or ":", not starting with "amq."\n' +
        '  - queueType: received "stream"; allowed: classic or quorum\n' +
        '  - prefetch: received 0; allowed: a whole number from 1 to 65535\n' +
        '  - holdMs: received 1.5; allowed: a whole number of milliseconds from 0 to 60000',
    );
  });

  it.each([null, 'agent', 5])('refuses %p for the options object', (options) => {
    expect(message(() => resolveMoDelayAgentOptions(options as never))).toBe(
      `Invalid AMQP configuration:\n  - MoDelayAgentModule options: received ${JSON.stringify(options)}; allowed: an object`,
    );
  });

  it('names the environment variables when read from the environment', () => {
    expect(
      message(() =>
        loadMoDelayAgentOptionsFromEnv({ AMQP__DELAY_PREFIX: 'p'.repeat(201), AMQP__DELAY_PREFETCH: '70000' }),
      ),
    ).toBe(
      'Invalid AMQP configuration:\n' +
        `  - AMQP__DELAY_PREFIX: received "${'p'.repeat(119)}… (203 chars); allowed: 1-200 letters, digits, "-", "_", "." or ":", not starting with "amq."\n` +
        '  - AMQP__DELAY_PREFETCH: received 70000; allowed: a whole number from 1 to 65535',
    );
  });
});
