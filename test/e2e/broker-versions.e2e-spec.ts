// What RabbitMQ 4.x changed, met on every version (BROKER):
// - dead-letter queues keep what they hold however often it is looked at: from 4.0
//   a quorum queue declared without a delivery limit drops a message handed out 20
//   times, and reading a dead-letter queue (`mo-amqp dlq list`, `show`) hands every
//   message out once and takes it back;
// - classic queues on a 4.x cluster are said to be unreplicated (4.0 removed mirroring).
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import type { GetMessage } from 'amqplib';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MoDelayAgentModule, MoEventSubscribe } from '../../lib';
import { delayTopology } from '../../lib/delay/delay-ladder';
import { bootApp } from '../support/app';
import { BROKER, BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const run = promisify(execFile);
/** More looks than RabbitMQ 4.x's default delivery limit (20). */
const LOOKS = 25;
const BODY = Buffer.from('{"uuid": "c390b9a2-7202-48e6-972b-ce36a90065c4", "time": "2021-07-27T00:00:00+02:00"}');
const is4 = !BROKER.version.startsWith('3.');

describe(`dead-letter queues on RabbitMQ ${BROKER.version}`, () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;
  let logger: CapturingLogger;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    logger = new CapturingLogger();
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
  });

  /**
   * Hands the queue's head message out on a channel of its own and takes it back by closing it,
   * `LOOKS` times: how many looks it survived.
   */
  async function look(queue: string): Promise<number> {
    for (let i = 0; i < LOOKS; i++) {
      const reader = await broker.connection.createChannel();
      // The one taken back may be on its way still.
      let message: GetMessage | false = false;
      for (const deadline = Date.now() + 5_000; !message && Date.now() < deadline;) message = await reader.get(queue);
      await reader.close();
      if (!message) return i; // dropped by the broker
    }
    return LOOKS;
  }

  it(`a quorum @MoEventSubscribe's .dlq keeps a dead letter looked at ${LOOKS} times, and dlq list still shows it`, async () => {
    const exchange = uniqueName('dlq-looks');
    const queue = uniqueName('dlq-looks.q');
    broker.track(exchange);
    for (const q of [queue, `${queue}.dlq`]) broker.trackQueue(q);
    @Injectable()
    class Consumer {
      @MoEventSubscribe({ queue, queueType: 'quorum' })
      async onEvent() {}
    }
    app = await bootApp({ enabled: true, exchange }, { providers: [Consumer], logger });
    broker.channel.sendToQueue(`${queue}.dlq`, BODY, { persistent: true, messageId: 'dead-1' });
    await until(async () => (await broker.depth(`${queue}.dlq`)) === 1, 'the dead letter');
    expect(await look(`${queue}.dlq`)).toBe(LOOKS);
    await until(async () => (await broker.depth(`${queue}.dlq`)) === 1, 'the dead letter back', 5_000);
    const { stdout } = await run(process.execPath, [CLI, 'dlq', 'list', queue], {
      env: { ...process.env, AMQP__URL: BROKER_URL },
    });
    expect(stdout).toContain('message_id=dead-1');
    expect(logger.lines.filter((l) => l.includes('delivery limit'))).toEqual([]);
  });

  it(`the delay agent's quorum .dlq keeps a dead letter looked at ${LOOKS} times`, async () => {
    const prefix = uniqueName('dlq-agent');
    const t = delayTopology(prefix);
    broker.trackDelayAgent(prefix);
    const exchange = uniqueName('dlq-agent.events');
    broker.track(exchange);
    app = await bootApp(
      { enabled: true, exchange, delayedExchange: `${exchange}.delayed` },
      { imports: [MoDelayAgentModule.forRoot({ prefix, queueType: 'quorum' })], logger },
    );
    broker.track(`${exchange}.delayed`);
    broker.channel.sendToQueue(t.deadLetter, BODY, { persistent: true, messageId: 'dead-2' });
    await until(async () => (await broker.depth(t.deadLetter)) === 1, 'the dead letter');
    expect(await look(t.deadLetter)).toBe(LOOKS);
    await until(async () => (await broker.depth(t.deadLetter)) === 1, 'the dead letter back', 5_000);
  });

  it(
    is4
      ? 'a quorum .dlq made before (no delivery limit of its own) is used as it is, with a warning naming the policy that lifts its limit'
      : 'a quorum .dlq made before is used as it is, without a warning: 3.x quorum queues have no default delivery limit',
    async () => {
      const exchange = uniqueName('dlq-legacy');
      const queue = uniqueName('dlq-legacy.q');
      broker.track(exchange);
      for (const q of [queue, `${queue}.dlq`]) broker.trackQueue(q);
      // As this package declared it before RabbitMQ 4.x.
      await broker.channel.assertQueue(`${queue}.dlq`, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      @Injectable()
      class Consumer {
        @MoEventSubscribe({ queue, queueType: 'quorum' })
        async onEvent() {}
      }
      app = await bootApp({ enabled: true, exchange }, { providers: [Consumer], logger });
      const warnings = logger.lines.filter((l) => l.includes(`"${queue}.dlq" exists as a quorum queue`));
      if (is4) {
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(/^WARN /);
        expect(warnings[0]).toContain(`drops a dead letter once it has been handed out 20 times`);
        expect(warnings[0]).toContain(
          `rabbitmqctl set_policy --apply-to quorum_queues mo-amqp-dlq '\\.dlq$' '{"delivery-limit":-1}'`,
        );
      } else {
        expect(warnings).toEqual([]);
      }
      // And it consumes: the queue, its retry queue and the .dlq are all there.
      expect((await broker.channel.checkQueue(queue)).consumerCount).toBe(1);
    },
  );
});

describe(`classic queues on a cluster of RabbitMQ ${BROKER.version}`, () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;

  beforeEach(async () => {
    broker = await TestBroker.connect();
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
  });

  // Two URLs are a cluster to the package (it tries them in turn); here both name the one node.
  const cluster = `${BROKER_URL},${BROKER_URL.replace('localhost', '127.0.0.1')}`;

  it(
    is4
      ? 'are said at start to be unreplicated, for consumers and the delay agent, naming the setting; quorum ones are not'
      : 'are not warned about: RabbitMQ 3.x still mirrors classic queues by policy',
    async () => {
      const exchange = uniqueName('classic-cluster');
      const [classic, quorum] = [uniqueName('classic-cluster.c'), uniqueName('classic-cluster.q')];
      const prefix = uniqueName('classic-cluster.agent');
      broker.track(exchange);
      broker.track(`${exchange}.delayed`);
      broker.trackDelayAgent(prefix);
      for (const q of [classic, quorum]) for (const name of [q, `${q}.dlq`]) broker.trackQueue(name);
      @Injectable()
      class Consumers {
        @MoEventSubscribe({ queue: classic })
        async onClassic() {}

        @MoEventSubscribe({ queue: quorum, queueType: 'quorum' })
        async onQuorum() {}
      }
      const logger = new CapturingLogger();
      app = await bootApp(
        { enabled: true, url: cluster, exchange, delayedExchange: `${exchange}.delayed` },
        { providers: [Consumers], imports: [MoDelayAgentModule.forRoot({ prefix })], logger },
      );
      const warnings = logger.lines.filter((l) => l.includes('a classic queue is not replicated'));
      if (!is4) {
        expect(warnings).toEqual([]);
        return;
      }
      expect(warnings).toHaveLength(2);
      const [consumers] = warnings.filter((l) => l.includes('The consumer queues'));
      expect(consumers).toContain(`"${classic}"`);
      expect(consumers).not.toContain(`"${quorum}"`);
      expect(consumers).toContain(`AMQP__URL names 2 nodes of RabbitMQ ${BROKER.version}.`);
      expect(consumers).toContain("@MoEventSubscribe({ queueType: 'quorum' }) makes them quorum queues");
      const [agent] = warnings.filter((l) => l.includes("delay agent's queues"));
      expect(agent).toContain('AMQP__DELAY_QUEUE_TYPE=quorum makes them quorum queues');
    },
  );

  it('are not warned about with one node', async () => {
    const exchange = uniqueName('classic-one');
    const queue = uniqueName('classic-one.q');
    broker.track(exchange);
    for (const name of [queue, `${queue}.dlq`]) broker.trackQueue(name);
    @Injectable()
    class Consumer {
      @MoEventSubscribe({ queue })
      async onEvent() {}
    }
    const logger = new CapturingLogger();
    app = await bootApp({ enabled: true, exchange }, { providers: [Consumer], logger });
    expect(logger.lines.filter((l) => l.includes('not replicated'))).toEqual([]);
  });
});
