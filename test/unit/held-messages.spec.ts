import { Delivery } from '../../lib/delay/agent-channel';
import { Held, HeldMessages } from '../../lib/delay/held-messages';

function held(due: number, open = true): Held {
  const delivery: Delivery = { open, ack: () => undefined, requeue: () => undefined, reject: () => undefined };
  return { due, routingKey: 'employee.engagement.create', content: Buffer.from('{}'), properties: {}, delivery };
}

describe('HeldMessages', () => {
  beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => jest.useRealTimers());

  it('hands each message over once it is due by the wall clock, earliest first, never before', () => {
    const released: { due: number; at: number }[] = [];
    const messages = new HeldMessages((h) => released.push({ due: h.due, at: Date.now() }));
    // Random due times within a minute, with ties.
    let seed = 7;
    const random = () => (seed = (seed * 48_271) % 2_147_483_647) / 2_147_483_647;
    const dues = Array.from({ length: 2_000 }, () => 1_000_000 + Math.floor(random() * 60_000));
    for (const due of dues) messages.add(held(due));
    expect(messages.size).toBe(2_000);

    jest.advanceTimersByTime(30_000);
    expect(released.every(({ due, at }) => at >= due)).toBe(true);
    expect(released.length).toBe(dues.filter((d) => d <= 1_030_000).length);

    jest.advanceTimersByTime(30_000);
    expect(released.map((r) => r.due)).toEqual([...dues].sort((a, b) => a - b));
    expect(released.every(({ due, at }) => at >= due && at - due < 5)).toBe(true);
    expect(messages.size).toBe(0);
  });

  it('re-arms for a message earlier than all it holds', () => {
    const released: number[] = [];
    const messages = new HeldMessages((h) => released.push(h.due));
    messages.add(held(1_050_000));
    messages.add(held(1_000_100));
    jest.advanceTimersByTime(100);
    expect(released).toEqual([1_000_100]);
  });

  it('drains everything and stops its timer (shutdown), and keeps only what retain accepts', () => {
    const released: number[] = [];
    const messages = new HeldMessages((h) => released.push(h.due));
    for (const due of [1_000_300, 1_000_100, 1_000_200]) messages.add(held(due, due !== 1_000_200));
    messages.retain((h) => h.delivery.open);
    expect(messages.size).toBe(2);
    jest.advanceTimersByTime(150);
    expect(released).toEqual([1_000_100]);
    expect(messages.drain().map((h) => h.due)).toEqual([1_000_300]);
    jest.advanceTimersByTime(1_000);
    expect(released).toEqual([1_000_100]);
  });
});
