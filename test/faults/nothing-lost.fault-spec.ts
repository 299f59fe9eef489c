import { Injectable } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import * as amqp from 'amqplib';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { MoAmqpModule, MoEvent, MoEventsService } from '../../lib';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import {
  Fixture,
  cluster,
  drainQueue,
  faultCounts,
  report,
  restartBroker,
  startBroker,
  stopBroker,
  uuid,
} from './support';

// In the test file's temporary working directory, which is deleted afterwards (test/support/isolate-cwd.ts).
const tempDir = (name: string) => fs.mkdtempSync(join(process.cwd(), `${name}-`));

@Injectable()
class Engagements {
  /** A business write that publishes once it has resolved. */
  @MoEvent('employee', 'engagement', 'create', { uuid: (_r: void, i: number) => uuid(i) })
  async create(_i: number): Promise<void> {}
}

/** Declares an exchange and a durable queue bound to all of it: the sink that outlives restarts. */
async function sink(url: string, exchange: string, queue: string, quorum = false): Promise<void> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(queue, { durable: true, arguments: quorum ? { 'x-queue-type': 'quorum' } : {} });
  await channel.bindQueue(queue, exchange, '#');
  await connection.close();
}

async function bootPublisher(url: string, exchange: string, spoolDir: string): Promise<TestingModule> {
  const app = await Test.createTestingModule({
    imports: [MoAmqpModule.forRoot({ enabled: true, url, exchange, spoolDir, publishTimeoutMs: 3_000 })],
    providers: [Engagements],
  })
    .setLogger(new CapturingLogger())
    .compile();
  await app.init();
  return app;
}

/** `count` @MoEvent calls, `concurrency` at a time; `during(i)` runs once call i has been made. */
async function burst(
  service: Engagements,
  count: number,
  concurrency: number,
  at: number,
  during: () => Promise<unknown>,
) {
  let next = 0;
  let fault: Promise<unknown> | undefined;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        if (i === at) fault = during();
        await service.create(i);
      }
    }),
  );
  await fault;
}

describe('nothing lost', () => {
  let broker: TestBroker;

  beforeEach(async () => {
    broker = await TestBroker.connect();
  });

  afterEach(async () => {
    broker = await TestBroker.reconnect(broker);
    await broker.close();
  });

  /** A new exchange with a durable queue bound to it on the local broker, both deleted after the test. */
  async function freshSink(name: string): Promise<{ exchange: string; queue: string }> {
    const exchange = uniqueName(name);
    const queue = `${exchange}.sink`;
    broker.track(exchange);
    broker.trackQueue(queue);
    await sink(BROKER_URL, exchange, queue);
    return { exchange, queue };
  }

  it('the broker stopped and restarted during a 10,000-event burst from @MoEvent methods', async () => {
    const { exchange, queue } = await freshSink('burst');
    const app = await bootPublisher(BROKER_URL, exchange, tempDir('burst'));
    const events = app.get(MoEventsService);
    try {
      await burst(app.get(Engagements), 10_000, 100, 2_000, restartBroker);
      const { copies, total } = await drainQueue([BROKER_URL], queue, 10_000, 90_000);
      const counters = events.counters;
      const counts = faultCounts(10_000, counters, { distinct: copies.size, total });
      report('broker restarted during a @MoEvent burst', counts);
      expect(counts.lost).toBe(0);
      expect(counters.confirmed + counters.spooled).toBe(10_000);
      expect(counters.decoratorFailures).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('the process killed (SIGKILL) with 1,000 events spooled while the broker was down', async () => {
    const { exchange, queue } = await freshSink('crash');
    const spoolDir = tempDir('crash');
    const env = { ENABLE_AMQP: 'true', AMQP__URL: BROKER_URL, AMQP__EXCHANGE: exchange, AMQP__SPOOL_DIR: spoolDir };

    const first = Fixture.start('fault-publisher.js', env);
    await first.line('ready');
    await stopBroker();
    // Until it notices, a publish waits for its confirm; then it spools at once.
    for (let tries = 0; tries < 100; tries++) {
      first.send('connected?');
      if ((await first.line('connected')) === 'connected false') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    first.send('publish 1000 0');
    const statuses = JSON.parse((await first.line('done')).slice(5));
    await first.stop('SIGKILL');
    await startBroker();

    const second = Fixture.start('fault-publisher.js', env); // adopts the spool of the one that died
    await second.line('ready');
    const { copies, total } = await drainQueue([BROKER_URL], queue, 1_000, 60_000);
    await second.stop();
    const counts = faultCounts(1_000, statuses, { distinct: copies.size, total });
    report('process killed with events spooled, broker down', counts);
    expect(counts.spooled).toBe(1_000);
    expect(counts.lost).toBe(0);
  });

  it('in a three-node cluster, the node leading the quorum queue killed mid-burst', async () => {
    await cluster('start');
    const urls = (await cluster('urls')).split(',');
    const exchange = uniqueName('cluster');
    const queue = `${exchange}.sink`;
    await sink(urls[1], exchange, queue, true);
    const leader = Number(await cluster('leader', queue));
    // Connect through the leader first, so the kill takes the app's connection too.
    const ordered = [urls[leader - 1], ...urls.filter((_, i) => i !== leader - 1)].join(',');
    const app = await bootPublisher(ordered, exchange, tempDir('cluster'));
    const events = app.get(MoEventsService);
    try {
      await burst(app.get(Engagements), 10_000, 100, 3_000, () => cluster('kill-node', String(leader)));
      const survivors = urls.filter((_, i) => i !== leader - 1);
      const { copies, total } = await drainQueue(survivors, queue, 10_000, 120_000);
      const counters = events.counters;
      const counts = faultCounts(10_000, counters, { distinct: copies.size, total });
      report(`cluster: quorum leader (node ${leader}) killed mid-burst`, counts);
      expect(counts.lost).toBe(0);
    } finally {
      await app.close();
      await cluster('stop');
    }
  });

  it('a consumer killed (SIGKILL) mid-batch: every message handled at least once', async () => {
    const exchange = uniqueName('consumer');
    const queue = `${exchange}.work`;
    broker.track(exchange);
    broker.trackQueue(queue);
    broker.trackQueue(`${queue}.dlq`);
    const handled = join(tempDir('consumer'), 'handled.txt');
    const env = {
      ENABLE_AMQP: 'true',
      AMQP__URL: BROKER_URL,
      AMQP__EXCHANGE: exchange,
      AMQP__SPOOL_DIR: 'off',
      CONSUMER_QUEUE: queue,
      HANDLED_FILE: handled,
    };
    const first = Fixture.start('fault-consumer.js', env);
    await first.line('ready');
    const channel = await broker.connection.createConfirmChannel();
    for (let i = 0; i < 2_000; i++) {
      channel.publish(
        exchange,
        'employee.engagement.update',
        Buffer.from(`{"uuid": "${uuid(i)}", "time": "2021-07-27"}`),
        {
          persistent: true,
        },
      );
    }
    await channel.waitForConfirms();
    const lines = () => (fs.existsSync(handled) ? fs.readFileSync(handled, 'utf8').split('\n').filter(Boolean) : []);
    while (lines().length < 500) await new Promise((resolve) => setTimeout(resolve, 20));
    await first.stop('SIGKILL'); // with up to 20 deliveries in hand
    const second = Fixture.start('fault-consumer.js', env);
    await second.line('ready');
    const deadline = Date.now() + 60_000;
    while (new Set(lines()).size < 2_000 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    await second.stop();
    const all = lines();
    const unique = new Set(all);
    const counts = faultCounts(2_000, { confirmed: 2_000 }, { distinct: unique.size, total: all.length });
    report('consumer killed mid-batch', counts);
    expect(counts.lost).toBe(0);
  });
});
