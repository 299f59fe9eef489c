import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import { MoDelayAgentModule, MoEventMessage, MoEventSubscribe, MoEventsService } from '../../lib';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { freePort, startPrometheus } from '../support/otel';
import { until } from '../support/until';

/** One sample of a Prometheus text exposition: `name{labels} value`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return undefined;
}

describe('metrics, scraped by Prometheus over HTTP', () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;
  let prometheus: Awaited<ReturnType<typeof startPrometheus>>;

  beforeAll(async () => {
    prometheus = await startPrometheus(await freePort());
    broker = await TestBroker.connect();
  });

  afterAll(async () => {
    await app?.close();
    await broker.close();
    await prometheus.stop();
  });

  it("exposes the counters, the spool, publish-to-confirm and handling times, and the delay agent's lateness", async () => {
    const exchange = uniqueName('metrics');
    const delayedExchange = uniqueName('metrics.delayed');
    const prefix = uniqueName('metrics.agent');
    const queue = uniqueName('metrics');
    broker.track(exchange);
    broker.track(delayedExchange);
    broker.trackDelayAgent(prefix);
    broker.trackQueue(queue);
    broker.trackQueue(`${queue}.dlq`);
    const handled: string[] = [];
    let failOnce = true;
    @Injectable()
    class Payroll {
      @MoEventSubscribe({ queue, retries: 1, retryDelayMs: 0 })
      async onEvent(event: MoEventMessage) {
        if (failOnce) {
          failOnce = false;
          throw new Error('not yet');
        }
        handled.push(event.uuid);
      }
    }
    app = await bootApp(
      { enabled: true, url: BROKER_URL, exchange, delayedExchange },
      { providers: [Payroll], imports: [MoDelayAgentModule.forRoot({ prefix })], logger: new CapturingLogger() },
    );
    const events = app.get(MoEventsService);
    for (let i = 0; i < 5; i++) {
      await events.publish('employee', 'engagement', 'create', `c390b9a2-7202-48e6-972b-ce36a90065c${i}`);
    }
    const soon = new Date(Date.now() + 1_000).toISOString();
    await events.publish('employee', 'engagement', 'update', 'c390b9a2-7202-48e6-972b-ce36a90065c9', { time: soon });
    await until(() => handled.length === 6, 'six events to be handled');
    await until(async () => {
      const text = await (await fetch(prometheus.url)).text();
      return sample(text, 'mo_amqp_delay_messages_total', { mo_amqp_outcome: 'forwarded' }) === 6;
    }, 'the agent to forward all six copies');

    const response = await fetch(prometheus.url);
    expect(response.status).toBe(200);
    const text = await response.text();
    // The counters, one series per outcome.
    expect(sample(text, 'mo_amqp_events_total', { mo_amqp_outcome: 'published' })).toBe(6);
    expect(sample(text, 'mo_amqp_events_total', { mo_amqp_outcome: 'confirmed' })).toBe(6);
    expect(sample(text, 'mo_amqp_events_total', { mo_amqp_outcome: 'retried' })).toBe(1);
    expect(sample(text, 'mo_amqp_events_total', { mo_amqp_outcome: 'dead_lettered' })).toBe(0);
    expect(sample(text, 'mo_amqp_events_total', { mo_amqp_outcome: 'spooled' })).toBe(0);
    // The spool: empty, and how old its oldest event is (none: 0).
    expect(sample(text, 'mo_amqp_spool_size')).toBe(0);
    expect(sample(text, 'mo_amqp_spool_events')).toBe(0);
    expect(sample(text, 'mo_amqp_spool_oldest_age')).toBe(0);
    // Publish to confirm, in seconds, by exchange.
    const sent = { messaging_system: 'rabbitmq', messaging_destination_name: exchange };
    expect(sample(text, 'messaging_client_operation_duration_count', sent)).toBe(6);
    expect(sample(text, 'messaging_client_operation_duration_sum', sent)).toBeGreaterThan(0);
    expect(sample(text, 'messaging_client_operation_duration_bucket', { ...sent, le: '+Inf' })).toBe(6);
    // Handling time: seven tries, one of which failed (error_type); the retry came by the default exchange.
    const processed = { messaging_destination_subscription_name: queue };
    expect(sample(text, 'messaging_process_duration_count', { ...processed, error_type: 'Error' })).toBe(1);
    const ok = text
      .split('\n')
      .filter((l) => l.startsWith('messaging_process_duration_count{') && l.includes(queue))
      .filter((l) => !l.includes('error_type'));
    expect(ok.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0)).toBe(6);
    // The delay agent: what it did, and how late its copies left.
    expect(sample(text, 'mo_amqp_delay_messages_total', { mo_amqp_outcome: 'forwarded' })).toBe(6);
    expect(sample(text, 'mo_amqp_delay_lateness_count', { messaging_destination_name: delayedExchange })).toBe(6);
    expect(sample(text, 'mo_amqp_delay_held')).toBe(0);
    // HELP, UNIT and TYPE lines say what each is.
    expect(text).toMatch(/# TYPE mo_amqp_events_total counter/);
    expect(text).toMatch(
      /# UNIT messaging_client_operation_duration s\n# TYPE messaging_client_operation_duration histogram/,
    );
  });
});
