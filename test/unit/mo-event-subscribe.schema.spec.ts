import { DELAY_AGENT_PREFIX, EXCHANGE_NAME, QUEUE_NAME } from '../../lib/config/amqp-rules';
import { delayTopology } from '../../lib/delay/delay-ladder';
import { MAX_RETRY_DELAY_MS } from '../../lib/events/retry-policy';
import { deadLetterQueueOf, retryQueueOf } from '../../lib/subscribing/subscriptions';
import {
  changeSubscribeOptionsProblem,
  subscribeOptionsProblem,
} from '../../lib/subscribing/mo-event-subscribe.schema';
import { MoChangeSubscribe, MoEventSubscribe } from '../../lib/subscribing/mo-event-subscribe.decorator';

const NAME = '"-", "_", "." or ":", not starting with "amq."';

describe('@MoEventSubscribe options', () => {
  it.each([
    [{ queue: 'q' }],
    [{ queue: 'payroll.engagements:v2_x-y', service: 'employee', objectType: 'engagement', action: 'create' }],
    // Either vocabulary's words: a consumer reads what the publisher sends.
    [{ queue: 'q', objectType: 'kle', action: 'refresh' }],
    [
      {
        queue: 'q',
        delayed: true,
        queueType: 'quorum',
        prefetch: 65_535,
        retries: 100,
        retryDelayMs: MAX_RETRY_DELAY_MS,
      },
    ],
    [{ queue: 'q', delayed: false, queueType: 'classic', prefetch: 1, retries: 0, retryDelayMs: 0 }],
    [{ queue: 'q', exchange: 'x'.repeat(255) }],
    [{ queue: 'q'.repeat(249), service: undefined, exchange: undefined, prefetch: undefined }],
  ])('accepts %j', (options) => {
    expect(subscribeOptionsProblem(options)).toBeUndefined();
  });

  it.each([undefined, null, 'q', 5, true])('refuses %p for options', (options) => {
    expect(subscribeOptionsProblem(options)).toBe('needs an options object with at least a queue');
  });

  it('refuses an unknown option, listing the options', () => {
    expect(subscribeOptionsProblem({ queue: 'q', prefech: 5 })).toBe(
      'unknown option "prefech"; the options are queue, service, objectType, action, exchange, delayed, queueType, ' +
        'prefetch, retries, retryDelayMs',
    );
  });

  it.each([
    [undefined, 'undefined'],
    [null, 'null'],
    ['', '""'],
    ['amq.mine', '"amq.mine"'],
    ['has space', '"has space"'],
    ['kø', '"kø"'],
    ['q'.repeat(250), `"${'q'.repeat(119)}… (252 chars)`],
    [42, '42'],
  ])('refuses queue %p', (queue, shown) => {
    expect(subscribeOptionsProblem({ queue })).toBe(`queue ${shown} must be 1-249 letters, digits, ${NAME}`);
  });

  it.each([
    ['service', 'x', 'service "x" is not one of employee, org_unit (either vocabulary); leave it out for any'],
    ['service', null, 'service null is not one of employee, org_unit (either vocabulary); leave it out for any'],
    [
      'objectType',
      '#',
      'object type "#" is not one of address, association, employee, engagement, it, leave, manager, org_unit, ' +
        'related_unit, role, kle, owner, rolebinding (either vocabulary); leave it out for any',
    ],
    [
      'action',
      '*',
      'action "*" is not one of create, update, delete, edit, terminate, refresh (either vocabulary); leave it out for any',
    ],
  ])('refuses %s %p outside both vocabularies', (field, value, problem) => {
    expect(subscribeOptionsProblem({ queue: 'q', [field]: value })).toBe(problem);
  });

  it.each([
    ['amq.topic', '"amq.topic"'],
    ['', '""'],
    [null, 'null'],
    ['x'.repeat(256), `"${'x'.repeat(119)}… (258 chars)`],
  ])('refuses exchange %p', (exchange, shown) => {
    expect(subscribeOptionsProblem({ queue: 'q', exchange })).toBe(
      `exchange ${shown} is not an exchange name: 1-255 letters, digits, ${NAME}`,
    );
  });

  it.each([true, false, 'yes'])('refuses exchange with delayed %p', (delayed) => {
    expect(subscribeOptionsProblem({ queue: 'q', exchange: 'mine', delayed })).toBe(
      'give exchange or delayed, not both',
    );
  });

  it.each(['yes', 1, null])('refuses delayed %p', (delayed) => {
    expect(subscribeOptionsProblem({ queue: 'q', delayed })).toBe('delayed must be true or false');
  });

  it.each([
    ['stream', '"stream"'],
    [null, 'null'],
  ])('refuses queueType %p', (queueType, shown) => {
    expect(subscribeOptionsProblem({ queue: 'q', queueType })).toBe(`queueType ${shown} is not classic or quorum`);
  });

  it.each([0, 65_536, 1.5, -1, '5', null, NaN])('refuses prefetch %p', (prefetch) => {
    expect(subscribeOptionsProblem({ queue: 'q', prefetch })).toBe(
      `prefetch ${typeof prefetch === 'string' ? `"${prefetch}"` : prefetch} must be a whole number from 1 to 65535`,
    );
  });

  it.each([-1, 101, 2.5, '3'])('refuses retries %p', (retries) => {
    expect(subscribeOptionsProblem({ queue: 'q', retries })).toBe(
      `retries ${typeof retries === 'string' ? `"${retries}"` : retries} must be a whole number from 0 to 100`,
    );
  });

  it.each([-1, MAX_RETRY_DELAY_MS + 1, 0.5, '0'])('refuses retryDelayMs %p', (retryDelayMs) => {
    expect(subscribeOptionsProblem({ queue: 'q', retryDelayMs })).toBe(
      `retryDelayMs ${typeof retryDelayMs === 'string' ? `"${retryDelayMs}"` : retryDelayMs} must be a whole number ` +
        'of milliseconds from 0 to 86400000',
    );
  });

  it('names the first problem, in the order of the options', () => {
    const bad = { queue: 'q', objectType: '#', exchange: 'amq.x', delayed: 'x', queueType: 'x', prefetch: 0 };
    expect(subscribeOptionsProblem({ ...bad, queue: 'amq.q', bogus: 1 })).toMatch(/^unknown option "bogus"/);
    expect(subscribeOptionsProblem({ ...bad, queue: 'amq.q' })).toMatch(/^queue "amq.q"/);
    expect(subscribeOptionsProblem(bad)).toMatch(/^object type "#"/);
    expect(subscribeOptionsProblem({ ...bad, objectType: undefined })).toMatch(/^exchange "amq.x"/);
    expect(subscribeOptionsProblem({ ...bad, objectType: undefined, exchange: undefined })).toBe(
      'delayed must be true or false',
    );
    expect(subscribeOptionsProblem({ ...bad, objectType: undefined, exchange: undefined, delayed: true })).toMatch(
      /^queueType "x"/,
    );
  });
});

describe('@MoChangeSubscribe options', () => {
  it.each([
    [{ queue: 'q' }, undefined],
    [{ queue: 'q', objectType: 'rolebinding' }, undefined],
    [{ queue: 'q', objectType: ['role', 'rolebinding'], retries: 0, queueType: 'quorum' }, undefined],
    [{ queue: 'q', objectType: 'employee' }, 'objectType "employee" is not one of address, association, class'],
    [{ queue: 'q', objectType: [] }, 'objectType an empty list is not one of'],
    [{ queue: 'q', objectType: ['person', 'person'] }, 'objectType lists "person" twice'],
    [{ queue: 'q', service: 'employee' }, 'unknown option "service"; the options are queue, objectType, exchange'],
    [{ queue: 'q', delayed: true }, 'unknown option "delayed"'],
    [{ queue: 'q', prefetch: 0 }, 'prefetch 0 must be'],
    [null, 'needs an options object'],
  ])('%p: %p', (options, problem) => {
    const found = changeSubscribeOptionsProblem(options);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });

  it('refuses a second consumer decorator on one method at once, instead of one consuming nothing', () => {
    expect(() => {
      class Both {
        @MoChangeSubscribe({ queue: 'a' })
        @MoEventSubscribe({ queue: 'b' })
        handle() {}
      }
      return Both;
    }).toThrow(
      '@MoChangeSubscribe on Both.handle: it already has @MoEventSubscribe; give each consumer a method of its own',
    );
  });
});

describe('AMQP name rules', () => {
  it('leave room for the names derived from them (255 at most)', () => {
    const queue = 'q'.repeat(249);
    expect(QUEUE_NAME.pattern.test(queue)).toBe(true);
    expect(Math.max(retryQueueOf(queue).length, deadLetterQueueOf(queue).length)).toBeLessThanOrEqual(255);

    const prefix = 'p'.repeat(200);
    expect(DELAY_AGENT_PREFIX.pattern.test(prefix)).toBe(true);
    const t = delayTopology(prefix);
    const names = [t.incoming, t.due, t.deadLetter, t.entryRouter, t.waitQueue(28), t.router(28)];
    expect(Math.max(...names.map((n) => n.length))).toBeLessThanOrEqual(255);
  });

  it('refuse the broker\'s own "amq." names and names one longer than allowed', () => {
    for (const [rule, max] of [
      [EXCHANGE_NAME, 255],
      [QUEUE_NAME, 249],
      [DELAY_AGENT_PREFIX, 200],
    ] as const) {
      expect(rule.pattern.test('amq.x')).toBe(false);
      expect(rule.pattern.test('x'.repeat(max))).toBe(true);
      expect(rule.pattern.test('x'.repeat(max + 1))).toBe(false);
      expect(rule.allowed).toBe(`1-${max} letters, digits, ${NAME}`);
    }
  });
});
