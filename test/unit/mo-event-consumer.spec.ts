import { Nack } from '@golevelup/nestjs-rabbitmq';
import type { ConsumeMessage, Options } from 'amqplib';
import {
  MO_HEADER_ATTEMPT,
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MO_HEADER_ROUTING_KEY,
} from '../../lib';
import { readMoDelivery } from '../../lib/events/mo-event-message';
import { ConsumerBinding, ConsumerState, consumeDelivery } from '../../lib/subscribing/mo-event-consumer';
import { MAX_RETRY_DELAY_MS, retryDelayOf } from '../../lib/events/retry-policy';
import { GiveBacks, MAX_GIVE_BACKS, giveBackPauseMs } from '../../lib/runtime/give-backs';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const GOOD = Buffer.from(`{"uuid": "${UUID}", "time": "2021-07-27"}`);

function delivery(
  content: Buffer,
  headers: Record<string, unknown> = {},
  routingKey = 'employee.it.create',
  // Retry copies come back through the default exchange, routed by the queue's name.
  exchange = routingKey === 'payroll' ? '' : 'os2mo',
): ConsumeMessage {
  return {
    content,
    fields: { deliveryTag: 1, redelivered: false, exchange, routingKey, consumerTag: 'c' },
    properties: {
      headers,
      messageId: 'm-1',
      contentType: 'application/json',
      deliveryMode: 2,
      timestamp: 1,
      userId: 'someone-else',
    } as unknown as ConsumeMessage['properties'],
  };
}

function setup(
  handler: (event: unknown) => unknown,
  { forwardFails = false as boolean | (() => boolean), retryDelayMs = 0 } = {},
) {
  const forwarded: { exchange: string; routingKey: string; content: Buffer; properties: Options.Publish }[] = [];
  const counts: string[] = [];
  const logs: string[] = [];
  const binding: ConsumerBinding = {
    label: 'Payroll.onEvent',
    queue: 'payroll',
    deadLetterQueue: 'payroll.dlq',
    retryQueue: 'payroll.retry',
    retries: 2,
    retryDelayMs,
    read: (content, message) => readMoDelivery(content, message, 'UTC', { queue: 'payroll' }),
    logger: { warn: (m: string) => logs.push(m), error: (m: string) => logs.push(m) } as never,
    forward: async (exchange, routingKey, content, properties) => {
      if (typeof forwardFails === 'function' ? forwardFails() : forwardFails) throw new Error('broker away');
      forwarded.push({ exchange, routingKey, content, properties });
    },
    count: (what) => counts.push(what),
    giveBacks: new GiveBacks(),
  };
  const state: ConsumerState = { method: 'onEvent', binding };
  const instance = { onEvent: jest.fn(handler) };
  return { forwarded, counts, logs, state, instance };
}

/** Runs fake time on, a second at a time, until `promise` settles (however many ticks it takes to set its timer). */
async function withTimeRunning<T>(promise: Promise<T>): Promise<T> {
  let settled = false;
  void promise.finally(() => (settled = true)).catch(() => undefined);
  while (!settled) await jest.advanceTimersByTimeAsync(1_000);
  return promise;
}

describe('consumeDelivery', () => {
  it('calls the handler with the typed event and acks', async () => {
    const { state, instance, forwarded } = setup(() => undefined);
    await expect(consumeDelivery(state, instance, GOOD, delivery(GOOD))).resolves.toBeUndefined();
    expect(instance.onEvent).toHaveBeenCalledWith(
      expect.objectContaining({ uuid: UUID, routingKey: 'employee.it.create' }),
      expect.anything(),
    );
    expect(forwarded).toEqual([]);
  });

  it('dead-letters a malformed message without calling the handler, saying why, keeping the bytes', async () => {
    const { state, instance, forwarded, counts } = setup(() => undefined);
    const bad = Buffer.from('{"uuid": "nope", "time": "2021-07-27"}');
    await expect(consumeDelivery(state, instance, bad, delivery(bad))).resolves.toBeUndefined();
    expect(instance.onEvent).not.toHaveBeenCalled();
    expect(forwarded).toHaveLength(1);
    const [copy] = forwarded;
    expect([copy.exchange, copy.routingKey, copy.content]).toEqual(['', 'payroll.dlq', bad]);
    expect(copy.properties).toMatchObject({
      messageId: 'm-1',
      contentType: 'application/json',
      deliveryMode: 2,
      timestamp: 1,
    });
    expect(copy.properties.userId).toBeUndefined();
    expect(copy.properties.headers).toMatchObject({
      [MO_HEADER_REASON]: expect.stringContaining('uuid: received "nope"'),
      [MO_HEADER_ROUTING_KEY]: 'employee.it.create',
      [MO_HEADER_EXCHANGE]: 'os2mo',
      [MO_HEADER_QUEUE]: 'payroll',
    });
    expect(counts).toEqual(['deadLettered']);
  });

  it('puts a failed message in the retry queue to wait, longer each time, and never holds it', async () => {
    const { state, instance, forwarded, logs } = setup(
      () => {
        throw new Error('payroll is down');
      },
      { retryDelayMs: 5_000 },
    );
    await expect(consumeDelivery(state, instance, GOOD, delivery(GOOD))).resolves.toBeUndefined(); // acked
    expect(forwarded[0]).toMatchObject({ exchange: '', routingKey: 'payroll.retry' });
    expect(forwarded[0].properties).toMatchObject({ expiration: '5000', headers: { [MO_HEADER_ATTEMPT]: 2 } });
    // Back from the retry queue: dead-lettered to this queue through the default exchange.
    await consumeDelivery(state, instance, GOOD, delivery(GOOD, forwarded[0].properties.headers, 'payroll'));
    expect(forwarded[1].properties).toMatchObject({ expiration: '10000', headers: { [MO_HEADER_ATTEMPT]: 3 } });
    expect(logs[1]).toContain('it will be tried again in 10000 ms');
  });

  it('doubles the wait per attempt, up to a day', () => {
    expect([1, 2, 3, 4].map((attempt) => retryDelayOf(5_000, attempt))).toEqual([5_000, 10_000, 20_000, 40_000]);
    expect(retryDelayOf(5_000, 100)).toBe(MAX_RETRY_DELAY_MS);
    expect(retryDelayOf(0, 7)).toBe(0);
  });

  it('with retryDelayMs 0, queues a failed message again at once with the next attempt number, then dead-letters it after the retries', async () => {
    const { state, instance, forwarded, counts, logs } = setup(() => {
      throw new Error('payroll is down');
    });
    await consumeDelivery(state, instance, GOOD, delivery(GOOD));
    expect(forwarded[0]).toMatchObject({ exchange: '', routingKey: 'payroll' });
    expect(forwarded[0].properties.headers).toMatchObject({
      [MO_HEADER_ATTEMPT]: 2,
      [MO_HEADER_ROUTING_KEY]: 'employee.it.create',
    });

    // The retried copy arrives with the queue's name as routing key and the original in a header.
    const retried = delivery(GOOD, forwarded[0].properties.headers, 'payroll');
    await consumeDelivery(state, instance, GOOD, retried);
    expect(forwarded[1].properties.headers).toMatchObject({ [MO_HEADER_ATTEMPT]: 3 });

    await consumeDelivery(state, instance, GOOD, delivery(GOOD, forwarded[1].properties.headers, 'payroll'));
    expect(forwarded[2]).toMatchObject({ routingKey: 'payroll.dlq' });
    expect(forwarded[2].properties.headers?.[MO_HEADER_REASON]).toBe(
      'the handler failed 3 times; last error: Error: payroll is down',
    );
    expect(instance.onEvent).toHaveBeenCalledTimes(3);
    expect(counts).toEqual(['retried', 'retried', 'deadLettered']);
    expect(logs[0]).toContain(
      'Payroll.onEvent failed on employee.it.create (message_id m-1, attempt 1 of 3): Error: payroll is down',
    );
  });

  it('puts the message back (after a pause) when its copy cannot be published, instead of losing it', async () => {
    jest.useFakeTimers();
    try {
      const { state, instance, logs } = setup(() => undefined, { forwardFails: true });
      const bad = Buffer.from('not json');
      const result = consumeDelivery(state, instance, bad, delivery(bad));
      await jest.advanceTimersByTimeAsync(1_000);
      const outcome = await result;
      expect(outcome).toBeInstanceOf(Nack);
      expect((outcome as Nack).requeue).toBe(true);
      expect(logs[0]).toContain('could not retry or dead-letter message_id m-1 from "payroll" (Error: broker away)');
      expect(logs[0]).toContain(`it goes back to the queue in 1000 ms (1 of ${MAX_GIVE_BACKS})`);
    } finally {
      jest.useRealTimers();
    }
  });

  // Counted here on every RabbitMQ version: from 4.3 a requeueing nack no longer adds to a quorum
  // queue's delivery count, and a classic queue never counted.
  it(`puts it back ${MAX_GIVE_BACKS} times, waiting longer each time, then rejects it to the queue's dead-letter exchange`, async () => {
    jest.useFakeTimers();
    try {
      const { state, instance, logs, counts } = setup(() => undefined, { forwardFails: true });
      const bad = Buffer.from('not json');
      const outcomes: (Nack | undefined)[] = [];
      for (let i = 1; i <= MAX_GIVE_BACKS + 1; i++) {
        const started = Date.now();
        outcomes.push(await withTimeRunning(consumeDelivery(state, instance, bad, delivery(bad))));
        // (the last is not held back: within the first second run on)
        if (i <= MAX_GIVE_BACKS) expect(Date.now() - started).toBe(giveBackPauseMs(i));
      }
      expect(outcomes.slice(0, MAX_GIVE_BACKS).every((o) => o instanceof Nack && o.requeue)).toBe(true);
      const last = outcomes[MAX_GIVE_BACKS];
      expect(last).toBeInstanceOf(Nack);
      expect((last as Nack).requeue).toBe(false);
      expect(logs[MAX_GIVE_BACKS]).toContain(
        'rejected instead: RabbitMQ dead-letters it to "payroll.dlq" (x-death reason "rejected")',
      );
      expect(counts).toEqual(['deadLettered']);
      expect([1, 2, 3, 6, 7, 10].map(giveBackPauseMs)).toEqual([1_000, 2_000, 4_000, 30_000, 30_000, 30_000]);
    } finally {
      jest.useRealTimers();
    }
  });

  it('starts counting again for a message once a copy of it went through, and counts each message on its own', async () => {
    jest.useFakeTimers();
    try {
      let failing = true;
      const { state, instance, logs } = setup(() => undefined, { forwardFails: () => failing });
      const bad = Buffer.from('not json');
      const other = Buffer.from('not json either');
      const giveBack = (content: Buffer) =>
        withTimeRunning(consumeDelivery(state, instance, content, delivery(content)));
      for (let i = 0; i < MAX_GIVE_BACKS - 1; i++) await giveBack(bad);
      expect(logs.at(-1)).toContain(`(${MAX_GIVE_BACKS - 1} of ${MAX_GIVE_BACKS})`);
      await giveBack(other);
      expect(logs.at(-1)).toContain(`(1 of ${MAX_GIVE_BACKS})`);
      failing = false;
      await expect(giveBack(bad)).resolves.toBeUndefined(); // dead-lettered by its copy at last
      failing = true;
      await giveBack(bad);
      expect(logs.at(-1)).toContain(`(1 of ${MAX_GIVE_BACKS})`);
    } finally {
      jest.useRealTimers();
    }
  });

  it('puts the message back when the module is shutting down', async () => {
    const { state, instance } = setup(() => undefined);
    const outcome = await consumeDelivery({ ...state, binding: undefined }, instance, GOOD, delivery(GOOD));
    expect(outcome).toBeInstanceOf(Nack);
    expect(instance.onEvent).not.toHaveBeenCalled();
  });
});
