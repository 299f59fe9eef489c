// @MoEvent against the same method followed by a hand-written `await events.publish(...)`,
// both in the one process of the mo-amqp publisher (the same app, as a user has it).
const { alternate } = require('../lib/harness');

function decoratorScenario(concurrency, count) {
  return {
    usesPublishers: true,
    title: `@MoEvent method vs method + publish(), concurrency ${concurrency}`,
    async run({ contenders, purge, rounds }) {
      const { decorated, handWritten } = contenders.mo;
      return alternate([decorated, handWritten], rounds, async (c) => {
        await purge();
        return c.measure(count, concurrency);
      });
    },
    ours: '@MoEvent method',
    // "Costs at most 5% more": at least 0.95 of the hand-written throughput.
    targets: [
      { figure: 'msg/s', baseline: 'method + publish()', atLeast: 0.95 },
      { figure: 'cpu µs/msg', baseline: 'method + publish()' },
    ],
  };
}

module.exports = [decoratorScenario(1, 1_500), decoratorScenario(100, 20_000)];
