// Consumer throughput: @MoEventSubscribe against a plain @RabbitSubscribe handler,
// on the same messages (one exchange feeds both queues), in the same run.
const amqp = require('amqplib');
const { alternate } = require('../lib/harness');
const { consumers } = require('../lib/contenders');

const COUNT = 10_000;

/** The consume scenario on queues of one type: @MoEventSubscribe against @RabbitSubscribe. */
function consume(queueType) {
  return {
    title: `consume, prefetch 10${queueType === 'quorum' ? ', quorum queues' : ''}`,
    async run({ url, rounds }) {
      const exchange = `bench.consume.${process.pid}.${queueType}`;
      const connection = await amqp.connect(url);
      connection.on('error', () => undefined);
      const channel = await connection.createConfirmChannel();
      const moQueue = `${exchange}.mo`;
      const plainQueue = `${exchange}.plain`;
      const both = await consumers(url, exchange, moQueue, plainQueue, queueType);
      try {
        const body = Buffer.from(
          '{"uuid": "c390b9a2-7202-48e6-972b-ce36a90065c4", "time": "2021-07-27T00:00:00+02:00"}',
        );
        return await alternate([both.mo, both.plain], rounds, async (contender) => {
          await contender.pause();
          await channel.purgeQueue(contender.queue);
          // Fill: the same messages reach both queues; the other queue is purged before its turn.
          for (let i = 0; i < COUNT; i++) {
            channel.publish(exchange, 'employee.engagement.update', body, { persistent: true, messageId: String(i) });
          }
          await channel.waitForConfirms();
          return contender.consume(COUNT);
        });
      } finally {
        await both.close();
        for (const queue of [moQueue, plainQueue, `${moQueue}.dlq`, `${moQueue}.retry`])
          await channel.deleteQueue(queue);
        await channel.deleteExchange(exchange);
        await connection.close();
      }
    },
    ours: '@MoEventSubscribe',
    targets: [{ figure: 'msg/s', baseline: '@RabbitSubscribe', atLeast: 0.8 }],
  };
}

// Classic, the default, and quorum (replicated; RabbitMQ's advice for what must survive a node).
module.exports = [consume('classic'), consume('quorum')];
