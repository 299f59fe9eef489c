// `npm run bench`: every scenario in bench/scenarios against the local broker,
// this package and its baselines alternating in the same run. Prints one
// markdown table and writes the results as JSON to bench/results/.
// `--rounds N` sets the counted rounds per scenario (default 12: a multiple of 2,
// 3 and 4 gives each of the two to four contenders every position equally often);
// `--only TEXT` runs the scenarios whose title contains TEXT.
// `--cluster` (`npm run bench:cluster`) runs bench/scenarios/cluster.js instead, against the
// three-node cluster of scripts/rabbitmq-cluster.sh, which it starts and, at the end, stops.
// `--max-rate` (`npm run bench:max-rate`) runs only the delay agent's highest steady rate.
const amqp = require('amqplib');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { forkPublisher } = require('./lib/publisher-process');

const { broker } = require('../scripts/brokers');
const CLUSTER = process.argv.includes('--cluster');
const MAX_RATE = process.argv.includes('--max-rate');
const CLUSTER_SCRIPT = path.join(__dirname, '..', 'scripts', 'rabbitmq-cluster.sh');
const PUBLISHERS = {
  mo: 'mo-amqp',
  raw: 'raw amqplib',
  fair: 'raw amqplib, body per message',
  golevelup: 'golevelup',
};

function scenarios() {
  if (CLUSTER) return require('./scenarios/cluster');
  if (MAX_RATE) return [require('./scenarios/delay-agent').maxRate];
  return [
    ...require('./scenarios/publish'),
    ...require('./scenarios/decorator'),
    ...require('./scenarios/telemetry'),
    ...require('./scenarios/consume'),
    ...require('./scenarios/delay-agent'),
    ...require('./scenarios/outbox'),
  ];
}

/** scripts/rabbitmq-cluster.sh with `args`; its output, its messages passed on to stderr. */
function clusterScript(...args) {
  const result = spawnSync('bash', [CLUSTER_SCRIPT, ...args], { encoding: 'utf8' });
  process.stderr.write(result.stderr ?? '');
  if (result.status !== 0)
    throw new Error(`scripts/rabbitmq-cluster.sh ${args.join(' ')} exited with ${result.status}`);
  return { stdout: result.stdout.trim(), stderr: result.stderr };
}

/**
 * Starts the cluster (unless it runs already: then it is used and left running) and
 * returns its comma-separated URL and `stop()`, which stops it if this run started it.
 * A signal stops it too.
 */
function startCluster() {
  const started = !clusterScript('start').stderr.includes('already running');
  if (!started) process.stderr.write('bench: the cluster was running already: used as it is, and left running\n');
  let stopped = !started;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clusterScript('stop');
  };
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      stop();
      process.exit(128 + os.constants.signals[signal]);
    });
  }
  return { url: clusterScript('urls').stdout, stop };
}

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
}

// Lower is better for latencies and CPU: their ratio is baseline ÷ ours, so above 1 always means ours is better.
function ratio(figure, ours, baseline) {
  return figure === 'msg/s' ? ours / baseline : baseline / ours;
}

function format(value) {
  return Number.isInteger(value) || value >= 100 ? String(Math.round(value)) : value.toFixed(2);
}

async function main() {
  const cluster = CLUSTER ? startCluster() : undefined;
  try {
    const single = process.env.BROKER ? broker().url : (process.env.AMQP__URL ?? 'amqp://localhost:5672');
    await bench(cluster?.url ?? single);
  } finally {
    cluster?.stop();
  }
}

async function bench(BROKER_URL) {
  const rounds = Number(option('--rounds', 12));
  const only = option('--only', '');
  const started = Date.now();
  // The bench's own connection: to the first node of a cluster, as the raw amqplib contenders'.
  const admin = await amqp.connect(BROKER_URL.split(',')[0]);
  const rabbitmq = String(admin.connection.serverProperties.version);
  const channel = await admin.createChannel();
  const exchange = `bench.${process.pid}`;
  const queue = `${exchange}.sink`;
  await channel.assertExchange(exchange, 'topic', { durable: true });
  // On the cluster the publishers' sink is a quorum queue, replicated to all three nodes.
  await channel.assertQueue(queue, { durable: true, arguments: CLUSTER ? { 'x-queue-type': 'quorum' } : {} });
  await channel.bindQueue(queue, exchange, '#');

  // The publish contenders, each in its own process (bench/lib/publisher-process.js),
  // exist only while their scenarios run: they would take memory and the broker's
  // attention from the others.
  // `usesPublishers`: true for all of them, or the keys of those a scenario uses.
  const contenders = {};
  const openContenders = async (which) => {
    for (const key of which === true ? Object.keys(PUBLISHERS) : which) {
      contenders[key] ??= await forkPublisher(PUBLISHERS[key], BROKER_URL, exchange);
    }
  };
  const closeContenders = async () => {
    for (const [name, c] of Object.entries(contenders)) {
      await c.close();
      delete contenders[name];
    }
  };
  const rows = [];
  try {
    for (const scenario of scenarios().filter((s) => s.title.includes(only))) {
      process.stderr.write(`bench: ${scenario.title} …\n`);
      if (scenario.usesPublishers) await openContenders(scenario.usesPublishers);
      else await closeContenders();
      const {
        medians,
        samples,
        rows: own,
      } = await scenario.run({
        contenders,
        rounds,
        url: BROKER_URL,
        exchange,
        purge: () => channel.purgeQueue(queue),
      });
      // A scenario may make its own rows (one per step of --max-rate), bounded above or below.
      for (const row of own ?? []) {
        rows.push({
          scenario: row.scenario ?? scenario.title,
          figure: row.figure,
          ours: { name: scenario.ours, value: row.value },
          ...(row.atMost !== undefined && { atMost: row.atMost, met: row.value <= row.atMost }),
          ...(row.atLeast !== undefined && { target: row.atLeast, met: row.value >= row.atLeast }),
        });
      }
      for (const figure of scenario.info ?? []) {
        rows.push({
          scenario: scenario.title,
          figure,
          ours: { name: scenario.ours, value: medians[scenario.ours][figure] },
        });
      }
      // Shown beside a baseline for scale, with no target.
      for (const { figure, baseline } of scenario.compare ?? []) {
        const value = medians[scenario.ours][figure];
        const other = { name: baseline, value: medians[baseline][figure] };
        rows.push({
          scenario: scenario.title,
          figure,
          ours: { name: scenario.ours, value },
          baseline: other,
          ratio: ratio(figure, value, other.value),
        });
      }
      for (const target of scenario.absolute ?? []) {
        const value = medians[scenario.ours][target.figure];
        // A baseline here is shown for scale only: the target is the absolute bound.
        const baseline = target.baseline && { name: target.baseline, value: medians[target.baseline][target.figure] };
        rows.push({
          scenario: scenario.title,
          figure: target.figure,
          ours: { name: scenario.ours, value },
          ...(baseline && { baseline, ratio: ratio(target.figure, value, baseline.value) }),
          atMost: target.atMost,
          // NaN: not measurable here (RabbitMQ 4.x classic queues report no next_seq_id), so neither met nor missed.
          met: Number.isNaN(value) ? undefined : value <= target.atMost,
        });
      }
      // A target's own `ours` compares that contender of the scenario with the baseline; the row names it.
      for (const target of scenario.targets ?? []) {
        const name = target.ours ?? scenario.ours;
        const ours = medians[name][target.figure];
        const baseline = medians[target.baseline][target.figure];
        const r = ratio(target.figure, ours, baseline);
        rows.push({
          scenario: target.ours ? `${scenario.title} (${name})` : scenario.title,
          figure: target.figure,
          ours: { name, value: ours },
          baseline: { name: target.baseline, value: baseline },
          ratio: r,
          target: target.atLeast,
          met: target.atLeast === undefined ? undefined : r >= target.atLeast,
          samples,
        });
      }
    }
  } finally {
    await closeContenders();
    await channel.deleteQueue(queue);
    await channel.deleteExchange(exchange);
    await admin.close();
  }

  const lines = [
    '| scenario | figure | this package | baseline | baseline figure | ratio | target |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => {
      const verdict = r.met === undefined ? 'not measured' : r.met ? 'met' : 'NOT MET';
      let target = '';
      if (r.atMost !== undefined) target = `≤ ${r.atMost} ${verdict}`;
      else if (r.target !== undefined) target = `≥ ${r.target} ${verdict}`;
      if (!r.baseline) return `| ${r.scenario} | ${r.figure} | ${format(r.ours.value)} |  |  |  | ${target} |`;
      return (
        `| ${r.scenario} | ${r.figure} | ${format(r.ours.value)} | ${r.baseline.name} | ${format(r.baseline.value)} | ` +
        `${r.ratio.toFixed(2)} | ${target} |`
      );
    }),
  ];
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    node: process.version,
    rabbitmq,
    ...(CLUSTER && { broker: 'three-node cluster on this machine (scripts/rabbitmq-cluster.sh), quorum queues' }),
  };
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(lines.join('\n'));
  console.log(
    `\n${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, RabbitMQ ${rabbitmq}` +
      `${CLUSTER ? ', three-node cluster, quorum queues' : ''}; ` +
      `${rounds} rounds + 1 warm-up per scenario, medians; ratio above 1 favours this package; ${seconds} s`,
  );

  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const kind = (CLUSTER && 'cluster-') || (MAX_RATE && 'max-rate-') || '';
  const file = path.join(dir, `${kind}${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), machine, rounds, seconds, rows }, null, 2)}\n`,
  );
  console.log(`results: ${path.relative(process.cwd(), file)}`);
  if (rows.some((r) => r.met === false)) process.exitCode = 1;
}

main().catch((err) => {
  console.error(`bench failed: ${err.stack || err.message}`);
  process.exit(1);
});
