import { AgentGiveBacks } from '../../lib/delay/agent-give-backs';
import { MAX_GIVE_BACKS, giveBackPauseMs } from '../../lib/runtime/give-backs';

const message = {
  fields: { exchange: 'os2mo', routingKey: 'employee.it.create' },
  properties: {},
  content: Buffer.from('{}'),
};

function fakeDelivery() {
  const settled: string[] = [];
  return {
    settled,
    delivery: {
      open: true,
      ack: () => settled.push('ack'),
      requeue: () => settled.push('requeue'),
      reject: () => settled.push('reject'),
    },
  };
}

describe('the delay agent giving back a message it could not pass on', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  /** Gives it back once; how long until it went back, and how. */
  function giveBackOnce(giveBacks: AgentGiveBacks): { settled: string[]; after: () => number } {
    const { settled, delivery } = fakeDelivery();
    giveBacks.giveBack(delivery, new Error('broker away'), message);
    if (settled.length > 0) return { settled, after: () => 0 };
    expect(jest.getTimerCount()).toBe(1); // back after a pause, not at once
    let waited = 0;
    while (settled.length === 0) {
      jest.advanceTimersByTime(1_000);
      waited += 1_000;
    }
    return { settled, after: () => waited };
  }

  it(`in quorum mode: back to its queue ${MAX_GIVE_BACKS} times, after 1 s, 2 s, 4 s … 30 s; then rejected to the .dlq`, () => {
    const errors: string[] = [];
    let rejected = 0;
    const giveBacks = new AgentGiveBacks({ error: (m: string) => errors.push(m) }, true, 'agent.dlq', () => rejected++);
    for (let i = 1; i <= MAX_GIVE_BACKS; i++) {
      const { settled, after } = giveBackOnce(giveBacks);
      expect(settled).toEqual(['requeue']);
      expect(after()).toBe(giveBackPauseMs(i));
      expect(errors.at(-1)).toContain(`(${i} of ${MAX_GIVE_BACKS})`);
    }
    const { settled } = giveBackOnce(giveBacks);
    expect(settled).toEqual(['reject']);
    expect(rejected).toBe(1);
    expect(errors.at(-1)).toContain(
      'rejected instead: RabbitMQ dead-letters it to "agent.dlq" (x-death reason "rejected")',
    );
  });

  it('in classic mode (no dead-letter exchange to reject to): goes on going back at the longest pause, saying why', () => {
    const errors: string[] = [];
    const giveBacks = new AgentGiveBacks({ error: (m: string) => errors.push(m) }, false, 'agent.dlq', () => undefined);
    for (let i = 1; i <= MAX_GIVE_BACKS; i++) giveBackOnce(giveBacks);
    const { settled, after } = giveBackOnce(giveBacks);
    expect(settled).toEqual(['requeue']);
    expect(after()).toBe(giveBackPauseMs(MAX_GIVE_BACKS));
    expect(errors.at(-1)).toContain('classic queues have no dead-letter exchange here, so it is tried until it passes');
  });

  it('counts again from one once the message passed', () => {
    const errors: string[] = [];
    const giveBacks = new AgentGiveBacks({ error: (m: string) => errors.push(m) }, true, 'agent.dlq', () => undefined);
    for (let i = 1; i < MAX_GIVE_BACKS; i++) giveBackOnce(giveBacks);
    giveBacks.done(message);
    const { after } = giveBackOnce(giveBacks);
    expect(after()).toBe(1_000);
    expect(errors.at(-1)).toContain(`(1 of ${MAX_GIVE_BACKS})`);
  });
});
