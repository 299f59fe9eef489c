import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import type { ConsumeMessage } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { MO_HEADER_EXCHANGE, MoEvent, MoEventMessage, MoEventSubscribe, MoEventsService } from '../../lib';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { rabbitmqctl } from '../support/rabbitmqctl';
import { until } from '../support/until';

// Two Nest applications in one process (a test runner's, a worker's), with the same classes,
// each on an exchange (and a vhost) of its own: each publishes and consumes through its own
// module, retries included. Decorators leave metadata only; what each application binds is its own.

const queue = uniqueName('two-apps');

interface Received {
  readonly uuid: string;
  readonly exchange: unknown;
  readonly attempt: number;
}

@Injectable()
class Engagements {
  readonly received: Received[] = [];
  private readonly failedOnce = new Set<string>();

  @MoEvent('employee', 'engagement', 'create')
  async create(uuid: string): Promise<string> {
    return uuid;
  }

  // The first try fails, so the retry copy goes out through the application's own runtime.
  @MoEventSubscribe({ queue, objectType: 'engagement', retries: 2, retryDelayMs: 50 })
  async onEngagement(event: MoEventMessage, message: ConsumeMessage): Promise<void> {
    if (!this.failedOnce.has(event.uuid)) {
      this.failedOnce.add(event.uuid);
      throw new Error('the first try fails');
    }
    this.received.push({ uuid: event.uuid, exchange: message.properties.headers?.[MO_HEADER_EXCHANGE], attempt: 2 });
  }
}

describe('two applications in one process', () => {
  let broker: TestBroker;
  let vhost: string;
  const apps: TestingModule[] = [];

  beforeAll(async () => {
    broker = await TestBroker.connect();
    broker.trackQueue(queue);
    broker.trackQueue(`${queue}.dlq`);
    broker.trackQueue(`${queue}.retry`);
    vhost = uniqueName('vhost');
    await rabbitmqctl('add_vhost', vhost);
    const user = decodeURIComponent(new URL(BROKER_URL).username) || 'guest';
    await rabbitmqctl('set_permissions', '-p', vhost, user, '.*', '.*', '.*');
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await broker.close();
    await rabbitmqctl('delete_vhost', vhost);
  });

  it('keeps each its own: @MoEvent publishes, and @MoEventSubscribe consumes and retries, through its own module', async () => {
    const exchangeA = uniqueName('two-apps-a');
    const exchangeB = uniqueName('two-apps-b');
    broker.track(exchangeA);
    const urlB = new URL(BROKER_URL);
    urlB.pathname = `/${encodeURIComponent(vhost)}`;

    const a = await bootApp({ enabled: true, exchange: exchangeA }, { providers: [Engagements] });
    apps.push(a);
    // Booted second: under module-level state, it would have taken A's methods over.
    const b = await bootApp({ enabled: true, url: urlB.toString(), exchange: exchangeB }, { providers: [Engagements] });
    apps.push(b);
    const [engagementsA, engagementsB] = [a.get(Engagements), b.get(Engagements)];
    expect(engagementsA).not.toBe(engagementsB);

    const [uuidA, uuidB] = [randomUUID(), randomUUID()];
    await engagementsA.create(uuidA);
    await engagementsB.create(uuidB);
    await until(() => engagementsA.received.length + engagementsB.received.length >= 2, 'both events, retried once');
    await new Promise((resolve) => setTimeout(resolve, 300)); // nothing more arrives
    expect(engagementsA.received).toEqual([{ uuid: uuidA, exchange: exchangeA, attempt: 2 }]);
    expect(engagementsB.received).toEqual([{ uuid: uuidB, exchange: exchangeB, attempt: 2 }]);
    for (const app of [a, b]) expect(app.get(MoEventsService).counters).toMatchObject({ confirmed: 1, retried: 1 });

    // The first one's shutdown leaves the second one's bindings alone.
    await apps.shift()!.close();
    const later = randomUUID();
    await engagementsB.create(later);
    await until(() => engagementsB.received.length === 2, 'the second app goes on after the first closed');
    expect(engagementsB.received[1]).toEqual({ uuid: later, exchange: exchangeB, attempt: 2 });
    expect(engagementsA.received).toHaveLength(1);
  });
});
