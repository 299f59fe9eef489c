import {
  LEVELS,
  MAX_PASS_SECONDS,
  bitHeader,
  delayTopology,
  route,
  routerBindings,
  secondsToBitHeaders,
} from '../../lib/delay/delay-ladder';
import { loadMoDelayAgentOptionsFromEnv, resolveMoDelayAgentOptions } from '../../lib/delay/mo-delay-agent.config';
import { MoAmqpConfigError } from '../../lib';
import { seededRandom } from '../support/seeded-random';

/**
 * What RabbitMQ's headers exchange does with x-match: all: every binding argument
 * must equal the message's header, except those starting with "x-", which it
 * ignores (on both sides).
 */
function matches(args: Record<string, string>, headers: Record<string, string>): boolean {
  return Object.entries(args).every(([key, value]) => key.startsWith('x-') || headers[key] === value);
}

/** Follows a message through the ladder as RabbitMQ would, adding up the TTLs. */
function walk(seconds: number): { levels: number[]; waited: number } {
  const headers = secondsToBitHeaders(seconds);
  const levels: number[] = [];
  let from = LEVELS;
  for (;;) {
    const targets = routerBindings(from).filter((b) => matches(b.args, headers));
    expect(targets).toHaveLength(1);
    const [{ to }] = targets;
    if (to === 'due') break;
    levels.push(to);
    from = to;
  }
  return { levels, waited: levels.reduce((sum, level) => sum + 2 ** level, 0) };
}

describe('the delay ladder', () => {
  it('has 29 levels: 2^28 s is the longest TTL RabbitMQ 3.10 accepts', () => {
    expect(LEVELS).toBe(29);
    expect(MAX_PASS_SECONDS).toBe(2 ** 29 - 1);
  });

  it('uses bit headers a headers exchange matches on (not x-…, which it ignores)', () => {
    expect(Object.keys(secondsToBitHeaders(1)).every((key) => !key.startsWith('x-'))).toBe(true);
    for (let from = 0; from <= LEVELS; from++) {
      for (const { args } of routerBindings(from)) {
        expect(Object.keys(args).filter((key) => key.startsWith('x-'))).toEqual(['x-match']);
      }
    }
  });

  it('writes a number of seconds as one header per bit', () => {
    const headers = secondsToBitHeaders(5);
    expect(headers[bitHeader(0)]).toBe('1');
    expect(headers[bitHeader(1)]).toBe('0');
    expect(headers[bitHeader(2)]).toBe('1');
    expect(Object.values(headers).filter((v) => v === '1')).toHaveLength(2);
    expect(Object.keys(headers)).toHaveLength(29);
  });

  it.each([1, 2, 3, 59, 60, 61, 3_600, 86_399, 2 ** 20 + 7, 2 ** 28, MAX_PASS_SECONDS])(
    'routes %p s through exactly its set bits, highest first, waiting exactly that long',
    (seconds) => {
      const { levels, waited } = walk(seconds);
      expect(waited).toBe(seconds);
      expect(levels).toEqual([...levels].sort((a, b) => b - a));
    },
  );

  // The seed is in the test's name: a failure is replayed with TEST_SEED=<seed>.
  const random = seededRandom();
  it(`sends every random delay to exactly one place from every router, the one intended (TEST_SEED=${random.seed})`, () => {
    for (let i = 0; i < 2_000; i++) {
      const headers = secondsToBitHeaders(random.int(1, MAX_PASS_SECONDS));
      for (let from = 0; from <= LEVELS; from++) {
        const targets = routerBindings(from).filter((b) => matches(b.args, headers));
        expect(targets.map((t) => t.to)).toEqual([route(from, headers)]);
      }
    }
  });

  it('caps one pass at 2^29 - 1 s; the rest goes round again', () => {
    expect(walk(MAX_PASS_SECONDS + 1_000).waited).toBe(MAX_PASS_SECONDS);
  });

  it('names everything from one prefix', () => {
    const t = delayTopology('agent');
    expect([t.incoming, t.due, t.deadLetter, t.entryRouter, t.waitQueue(3), t.router(28)]).toEqual([
      'agent.incoming',
      'agent.due',
      'agent.dlq',
      'agent.route.entry',
      'agent.wait.03',
      'agent.route.28',
    ]);
  });
});

describe('delay agent options', () => {
  it('defaults, and reads the environment', () => {
    expect(loadMoDelayAgentOptionsFromEnv({})).toEqual({
      prefix: 'mo-delay-agent',
      queueType: 'classic',
      prefetch: 2000,
      holdMs: 60_000,
    });
    expect(
      loadMoDelayAgentOptionsFromEnv({
        AMQP__DELAY_PREFIX: 'x',
        AMQP__DELAY_QUEUE_TYPE: 'quorum',
        AMQP__DELAY_PREFETCH: '10',
        AMQP__DELAY_HOLD_MS: '0',
      }),
    ).toEqual({ prefix: 'x', queueType: 'quorum', prefetch: 10, holdMs: 0 });
  });

  it('names each bad variable, its value and what is allowed', () => {
    try {
      loadMoDelayAgentOptionsFromEnv({
        AMQP__DELAY_QUEUE_TYPE: 'mirrored',
        AMQP__DELAY_PREFETCH: 'lots',
        AMQP__DELAY_HOLD_MS: '-1',
      });
      throw new Error('expected an error');
    } catch (err) {
      expect(err).toBeInstanceOf(MoAmqpConfigError);
      expect((err as Error).message).toBe(
        'Invalid AMQP configuration:\n' +
          '  - AMQP__DELAY_QUEUE_TYPE: received "mirrored"; allowed: classic or quorum\n' +
          '  - AMQP__DELAY_PREFETCH: received "lots"; allowed: a whole number from 1 to 65535\n' +
          '  - AMQP__DELAY_HOLD_MS: received "-1"; allowed: a whole number of milliseconds from 0 to 60000',
      );
    }
    expect(() => resolveMoDelayAgentOptions({ prefix: 'amq.x' })).toThrow('prefix: received "amq.x"');
    expect(() => resolveMoDelayAgentOptions({ prefixx: 'a' } as never)).toThrow(
      'prefixx: received "a"; allowed: no such option',
    );
  });
});
