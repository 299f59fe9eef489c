// `npm run bench`: every scenario in bench/scenarios against the local broker,
// this package and its baselines alternating in the same run. Prints one
// markdown table and writes the results as JSON to bench/results/.
// `--rounds N` sets the counted rounds per scenario (default 12: a multiple of 2,
// 3 and 4 gives each of the two to four contenders every position equally often);
// `--only TEXT` runs the scenarios whose title contains TEXT.
const amqp = require('amqplib');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { forkPublisher } = require('./lib/publisher-process');

const BROKER_URL = process.env.AMQP__URL || 'amqp://localhost:5672';
const SCENARIOS = [
  ...require('./scenarios/publish'),
  ...require('./scenarios/decorator'),
  ...require('./scenarios/consume'),
  ...require('./scenarios/delay-agent'),
];

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
  const rounds = Number(option('--rounds', 12));
  const only = option('--only', '');
  const started = Date.now();
  const admin = await amqp.connect(BROKER_URL);
  const rabbitmq = String(admin.connection.serverProperties.version);
  const channel = await admin.createChannel();
  const exchange = `bench.${process.pid}`;
  const queue = `${exchange}.sink`;
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, exchange, '#');

  // The publish contenders, each in its own process (bench/lib/publisher-process.js),
  // exist only while their scenarios run: they would take memory and the broker's
  // attention from the others.
  const contenders = {};
  const openContenders = async () => {
    if (contenders.mo) return;
    contenders.mo = await forkPublisher('mo-amqp', BROKER_URL, exchange);
    contenders.raw = await forkPublisher('raw amqplib', BROKER_URL, exchange);
    contenders.fair = await forkPublisher('raw amqplib, body per message', BROKER_URL, exchange);
    contenders.golevelup = await forkPublisher('golevelup', BROKER_URL, exchange);
  };
  const closeContenders = async () => {
    for (const [name, c] of Object.entries(contenders)) {
      await c.close();
      delete contenders[name];
    }
  };
  const rows = [];
  try {
    for (const scenario of SCENARIOS.filter((s) => s.title.includes(only))) {
      process.stderr.write(`bench: ${scenario.title} …\n`);
      if (scenario.usesPublishers) await openContenders();
      else await closeContenders();
      const { medians, samples } = await scenario.run({
        contenders,
        rounds,
        url: BROKER_URL,
        purge: () => channel.purgeQueue(queue),
      });
      for (const figure of scenario.info ?? []) {
        rows.push({
          scenario: scenario.title,
          figure,
          ours: { name: scenario.ours, value: medians[scenario.ours][figure] },
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
          met: value <= target.atMost,
        });
      }
      for (const target of scenario.targets ?? []) {
        const ours = medians[scenario.ours][target.figure];
        const baseline = medians[target.baseline][target.figure];
        const r = ratio(target.figure, ours, baseline);
        rows.push({
          scenario: scenario.title,
          figure: target.figure,
          ours: { name: scenario.ours, value: ours },
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
      const verdict = r.met ? 'met' : 'NOT MET';
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
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, rabbitmq };
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(lines.join('\n'));
  console.log(
    `\n${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, RabbitMQ ${rabbitmq}; ` +
      `${rounds} rounds + 1 warm-up per scenario, medians; ratio above 1 favours this package; ${seconds} s`,
  );

  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
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
