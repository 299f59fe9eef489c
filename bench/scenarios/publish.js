// Publish path: this package's MoEventsService.publish against raw amqplib on a
// confirm channel (a body built once; and the fair baseline, each body and message
// id built per message as real events need) and golevelup's AmqpConnection.publish,
// same messages, same run, each contender in its own process.
const { alternate } = require('../lib/harness');

const FAIR = 'raw amqplib, body per message';

function publishScenario(concurrency, count, targets) {
  return {
    usesPublishers: true,
    title: `publish, concurrency ${concurrency}`,
    async run({ contenders, purge, rounds }) {
      const { mo, fair, raw, golevelup } = contenders;
      return alternate([mo, fair, raw, golevelup], rounds, async (c) => {
        await purge();
        return c.measure(count, concurrency, { latency: concurrency === 1 });
      });
    },
    ours: 'mo-amqp',
    targets,
  };
}

// CPU per message at most 1.15× the fair baseline's: its ÷ ours ≥ 1/1.15.
const CPU_TARGET = 0.87;

module.exports = [
  publishScenario(1, 1_500, [
    { figure: 'msg/s', baseline: FAIR },
    { figure: 'cpu µs/msg', baseline: FAIR, atLeast: CPU_TARGET },
    { figure: 'msg/s', baseline: 'raw amqplib', atLeast: 0.9 },
    { figure: 'msg/s', baseline: 'golevelup' },
    { figure: 'p50 ms', baseline: 'raw amqplib' },
    { figure: 'p99 ms', baseline: 'raw amqplib' },
  ]),
  publishScenario(100, 20_000, [
    { figure: 'msg/s', baseline: FAIR, atLeast: 0.97 },
    { figure: 'cpu µs/msg', baseline: FAIR, atLeast: CPU_TARGET },
    { figure: 'msg/s', baseline: 'raw amqplib', atLeast: 0.9 },
    { figure: 'msg/s', baseline: 'golevelup', atLeast: 1.0 },
    { figure: 'cpu µs/msg', baseline: 'raw amqplib' },
    { figure: 'cpu µs/msg', baseline: 'golevelup' },
  ]),
];
