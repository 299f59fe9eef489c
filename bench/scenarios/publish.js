// Publish path: this package's MoEventsService.publish against raw amqplib on a
// confirm channel and golevelup's AmqpConnection.publish, same messages, same run.
const { alternate, run } = require('../lib/harness');

function publishScenario(concurrency, count, targets) {
  return {
    usesPublishers: true,
    title: `publish, concurrency ${concurrency}`,
    async run({ contenders, purge, rounds }) {
      const { mo, raw, golevelup } = contenders;
      return alternate([mo, raw, golevelup], rounds, async (c) => {
        await purge();
        return run(count, concurrency, c.publish, { latency: concurrency === 1 });
      });
    },
    ours: 'mo-amqp',
    targets,
  };
}

module.exports = [
  publishScenario(1, 1_500, [
    { figure: 'msg/s', baseline: 'raw amqplib', atLeast: 0.9 },
    { figure: 'msg/s', baseline: 'golevelup' },
    { figure: 'p50 ms', baseline: 'raw amqplib' },
    { figure: 'p99 ms', baseline: 'raw amqplib' },
  ]),
  publishScenario(100, 20_000, [
    { figure: 'msg/s', baseline: 'raw amqplib', atLeast: 0.9 },
    { figure: 'msg/s', baseline: 'golevelup', atLeast: 1.0 },
    { figure: 'cpu µs/msg', baseline: 'raw amqplib' },
    { figure: 'cpu µs/msg', baseline: 'golevelup' },
  ]),
];
