// `npm run bench:cluster` (`node bench/run.js --cluster`): the three-node cluster of
// scripts/rabbitmq-cluster.sh, on this machine, with quorum queues: the publish path
// against raw amqplib building each body (the fair baseline) at 100 in flight, to a
// quorum queue; and the delay agent's steady run with its queues quorum, against a
// plain publish + consume of the same messages through a quorum queue. Every
// connection goes to the first node (the package and the agent get the cluster's
// comma-separated URL and take its first), so every queue's leader is there.
// Three nodes on one machine share its cores and disk: this measures what quorum
// replication costs per message, not what a cluster of three machines can carry.
const { brokerMeter } = require('../lib/broker');
const { alternate } = require('../lib/harness');
const { steadyScenario } = require('./delay-agent');

const FAIR = 'raw amqplib, body per message';
const PLAIN = 'plain publish + consume';
const PUBLISH_COUNT = 20_000;
const RATE = Number(process.env.BENCH_CLUSTER_RATE || 1_000);
const SECONDS = Number(process.env.BENCH_CLUSTER_SECONDS || 30);

module.exports = [
  {
    usesPublishers: ['mo', 'fair'],
    title: 'cluster: publish to a quorum queue, concurrency 100',
    async run({ contenders, purge, rounds, url }) {
      // The three nodes' CPU over each run too (its idle rate measured once, before): where the limit is.
      const meter = brokerMeter(url);
      await meter.idle(4_000);
      return alternate([contenders.mo, contenders.fair], rounds, async (c) => {
        await purge();
        meter.start();
        const figures = await c.measure(PUBLISH_COUNT, 100);
        meter.stop();
        return { ...figures, 'broker cpu µs/msg': meter.perMessage(PUBLISH_COUNT), 'broker cores': meter.cores() };
      });
    },
    ours: 'mo-amqp',
    // No targets: how the single broker's ratios hold up when every confirm waits for a quorum.
    targets: [
      { figure: 'msg/s', baseline: FAIR },
      { figure: 'cpu µs/msg', baseline: FAIR },
      { figure: 'broker cpu µs/msg', baseline: FAIR },
    ],
    // The three nodes' CPU during this package's runs, in cores (1 = one core busy): how near the machine's two.
    info: ['broker cores'],
  },
  steadyScenario({
    title: `cluster: delay agent, quorum queues, steady ${RATE}/s for ${SECONDS} s, due 0-60 s`,
    rate: RATE,
    count: RATE * SECONDS,
    queueType: 'quorum',
    info: [
      'delivered',
      'lateness p50 ms',
      'lateness p99 ms',
      'lateness max ms',
      'agent peak RSS MB',
      'agent cpu µs/msg',
      'client cpu µs/msg',
      'broker peak cores',
      'agent peak cores',
      'broker writes/msg',
    ],
    absolute: [
      { figure: 'early', atMost: 0 },
      { figure: 'lost', atMost: 0 },
    ],
    targets: [{ figure: 'broker cpu µs/msg', baseline: PLAIN }],
  }),
];
