// The delay agent in its own process (mo-amqp delay-agent), as it would run:
// (a) steady: messages at a fixed rate, each due 0-60 s later: delivered, early,
//     lost, lateness, the agent's peak RSS, and what they cost the broker (its CPU
//     per message and how often each message is written into a queue) against a
//     plain publish + consume of as many messages at the same rate in the same run;
// (b) burst: how fast it takes messages in, against raw amqplib publishing the
//     same messages to one durable queue.
const amqp = require('amqplib');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const { brokerMeter, settledEnqueued } = require('../lib/broker');
const { percentile } = require('../lib/stats');
const { HOLD_SLOTS, LEVELS, delayTopology } = require('../../dist/delay/delay-ladder');

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const STEADY_COUNT = Number(process.env.BENCH_DELAY_COUNT || 100_000);
const STEADY_RATE = 2_000;
const MAX_DELAY_MS = 60_000;
const BURST_COUNT = Number(process.env.BENCH_DELAY_COUNT || 100_000);
// The broker's own rate (timers, statistics, other clients) is measured this long
// before each metered stretch, once it has settled, and subtracted from it.
const IDLE_MS = 4_000;
const PLAIN = 'plain publish + consume';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function names(kind = 'delay') {
  const prefix = `bench.${kind}.${process.pid}.${Date.now().toString(36)}`;
  return { prefix, exchange: `${prefix}.events`, delayed: `${prefix}.delayed`, sink: `${prefix}.sink` };
}

async function startAgent(url, n) {
  const child = spawn(process.execPath, [CLI, 'delay-agent'], {
    env: {
      ...process.env,
      AMQP__URL: url,
      AMQP__EXCHANGE: n.exchange,
      AMQP__DELAYED_EXCHANGE: n.delayed,
      AMQP__DELAY_PREFIX: n.prefix,
      NO_COLOR: '1',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => chunk.toString().includes('Delaying events from') && resolve());
    child.on('exit', (code) => reject(new Error(`the agent exited with ${code}`)));
  });
  let peakRss = 0;
  const sample = () => {
    try {
      const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
      peakRss = Math.max(peakRss, kb * 1024);
    } catch {
      // not on Linux, or it has exited
    }
  };
  const sampler = setInterval(sample, 250);
  return {
    peakRss: () => peakRss,
    stop: async () => {
      clearInterval(sampler);
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function cleanup(channel, n) {
  const t = delayTopology(n.prefix);
  for (const q of [
    t.incoming,
    t.due,
    t.deadLetter,
    n.sink,
    ...Array.from({ length: LEVELS }, (_, i) => t.waitQueue(i)),
    ...Array.from({ length: HOLD_SLOTS }, (_, i) => t.holdQueue(i)),
  ]) {
    await channel.deleteQueue(q);
  }
  for (const e of [t.entryRouter, ...Array.from({ length: LEVELS }, (_, i) => t.router(i)), n.exchange, n.delayed]) {
    await channel.deleteExchange(e);
  }
}

function body(dueMs) {
  return Buffer.from(`{"uuid": "${randomUUID()}", "time": "${new Date(dueMs).toISOString().replace('Z', '+00:00')}"}`);
}

/** A connection with a confirm channel, and the events and delayed exchanges declared. */
async function openExchanges(url, n) {
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  await channel.assertExchange(n.exchange, 'topic', { durable: true });
  await channel.assertExchange(n.delayed, 'topic', { durable: true });
  return { connection, channel };
}

/**
 * Publishes `count` messages at `rate` per second: every 10 ms, the ones the
 * schedule says are owed by now; `send(i)` publishes one. Resolves once all are confirmed.
 */
async function publishAtRate(channel, count, rate, send) {
  const started = Date.now();
  let sent = 0;
  while (sent < count) {
    const owed = Math.min(count, Math.floor(((Date.now() - started) / 1000) * rate));
    for (; sent < owed; sent++) send(sent);
    await sleep(10);
  }
  await channel.waitForConfirms();
}

/**
 * The baseline for the broker's cost: the same number of messages, same bodies,
 * same rate, published persistent with confirms to one durable queue and
 * consumed with acknowledgements, as an application would without a delay.
 */
async function plainPublishConsume(url, meter) {
  const n = names('plain');
  const { connection, channel } = await openExchanges(url, n);
  const consumer = await connection.createChannel();
  await consumer.assertQueue(n.sink, { durable: true });
  await consumer.bindQueue(n.sink, n.exchange, '#');
  let consumed = 0;
  await consumer.consume(n.sink, (m) => {
    if (!m) return;
    consumer.ack(m);
    consumed++;
  });
  await meter.idle(IDLE_MS);
  meter.start();
  await publishAtRate(channel, STEADY_COUNT, STEADY_RATE, () => {
    const at = Date.now() + Math.floor(Math.random() * MAX_DELAY_MS);
    channel.publish(n.exchange, 'employee.engagement.create', body(at), { persistent: true, messageId: randomUUID() });
  });
  while (consumed < STEADY_COUNT) await sleep(50);
  // Its acknowledgements, the queue index's flush: part of the cost, and over within a second.
  await sleep(1_000);
  meter.stop();
  await connection.close();
  return n;
}

/**
 * Messages written into the queues under `prefix` ÷ messages, in all and per kind
 * of queue (the agent's incoming, ladder and due queues, the delayed events'
 * sink). NaN with a note when the management API does not answer or a queue
 * does not count (a quorum queue).
 */
function writesPerMessage(counts, prefix, messages) {
  const kinds = {};
  let total = 0;
  for (const [name, count] of counts) {
    const kind = name
      .slice(prefix.length + 1)
      .replace(/^wait\..*/, 'ladder')
      .replace(/^hold\..*/, 'hold');
    kinds[kind] = (kinds[kind] ?? 0) + count / messages;
    total += count / messages;
  }
  return { total, kinds };
}

async function brokerWrites(prefixes) {
  try {
    const counts = await settledEnqueued(`bench.`);
    return prefixes.map((prefix) => {
      const mine = [...counts].filter(([name]) => name.startsWith(`${prefix}.`));
      if (mine.some(([, count]) => typeof count !== 'number')) {
        process.stderr.write(`bench: a queue under ${prefix} has no enqueue count (quorum?): writes not counted\n`);
        return NaN;
      }
      const { total, kinds } = writesPerMessage(mine, prefix, STEADY_COUNT);
      const each = Object.entries(kinds).map(([kind, w]) => `${kind} ${w.toFixed(2)}`);
      process.stderr.write(`bench: broker writes/msg under ${prefix}: ${each.join(', ')}; total ${total.toFixed(2)}\n`);
      return total;
    });
  } catch (err) {
    process.stderr.write(
      `bench: broker writes not counted (${err.cause?.code ?? err.message}): ` +
        'the management API must answer; bash scripts/rabbitmq.sh management enables it\n',
    );
    return prefixes.map(() => NaN);
  }
}

const steady = {
  title: `delay agent, steady ${STEADY_RATE}/s, due 0-60 s`,
  async run({ url }) {
    const meter = brokerMeter(url);
    if (meter.pid === undefined) process.stderr.write('bench: the broker process was not found: no broker CPU\n');
    const plain = await plainPublishConsume(url, meter);
    const plainCpu = meter.perMessage(STEADY_COUNT);
    process.stderr.write(`bench: ${PLAIN}: ${meter.describe()}\n`);

    const n = names();
    const { connection, channel } = await openExchanges(url, n);
    const agent = await startAgent(url, n);
    const due = new Map();
    const arrived = new Map();
    const consumer = await connection.createChannel();
    await consumer.assertQueue(n.sink, { durable: true });
    await consumer.bindQueue(n.sink, n.delayed, '#');
    // Acknowledged, as the plain path's consumer does: the two differ only by the delay.
    await consumer.consume(n.sink, (m) => {
      if (!m) return;
      arrived.set(m.properties.messageId, Date.now());
      consumer.ack(m);
    });
    try {
      await meter.idle(IDLE_MS);
      meter.start();
      await publishAtRate(channel, STEADY_COUNT, STEADY_RATE, () => {
        const id = randomUUID();
        const at = Date.now() + Math.floor(Math.random() * MAX_DELAY_MS);
        due.set(id, at);
        channel.publish(n.exchange, 'employee.engagement.create', body(at), { persistent: true, messageId: id });
      });
      const lastDue = Math.max(...due.values());
      while (arrived.size < due.size && Date.now() < lastDue + 15_000) await sleep(200);
      await sleep(1_000);
      meter.stop();
    } finally {
      await agent.stop();
    }
    process.stderr.write(`bench: delay agent: ${meter.describe()}\n`);
    const lateness = [];
    let early = 0;
    for (const [id, at] of arrived) {
      const late = at - due.get(id);
      if (late < 0) early++;
      lateness.push(late);
    }
    const figures = {
      delivered: arrived.size,
      early,
      lost: due.size - arrived.size,
      'lateness p50 ms': percentile(lateness, 50),
      'lateness p99 ms': percentile(lateness, 99),
      'lateness max ms': Math.max(...lateness),
      'agent peak RSS MB': agent.peakRss() / 2 ** 20,
      'broker cpu µs/msg': meter.perMessage(STEADY_COUNT),
    };
    await connection.close();
    const [agentWrites, plainWrites] = await brokerWrites([n.prefix, plain.prefix]);
    figures['broker writes/msg'] = agentWrites;
    const admin = await (await amqp.connect(url)).createChannel();
    await cleanup(admin, n);
    await admin.deleteQueue(plain.sink);
    await admin.deleteExchange(plain.exchange);
    await admin.deleteExchange(plain.delayed);
    await admin.connection.close();
    const baseline = { 'broker cpu µs/msg': plainCpu, 'broker writes/msg': plainWrites };
    return { medians: { agent: figures, [PLAIN]: baseline }, samples: { agent: [figures], [PLAIN]: [baseline] } };
  },
  ours: 'agent',
  // Absolute targets: the figures are counts and times, not ratios against a baseline.
  absolute: [
    { figure: 'early', atMost: 0 },
    { figure: 'lost', atMost: 0 },
    { figure: 'lateness p99 ms', atMost: 50 },
    { figure: 'lateness max ms', atMost: 500 },
    { figure: 'agent peak RSS MB', atMost: 120 },
    // For delays up to a minute, all queues counted: incoming, ladder, due, and the
    // delayed events' own queue (the plain path's one queue is its 1).
    { figure: 'broker writes/msg', atMost: 3, baseline: PLAIN },
  ],
  // Broker CPU per delayed message at most 5× the plain path's: plain ÷ agent ≥ 0.2.
  targets: [{ figure: 'broker cpu µs/msg', baseline: PLAIN, atLeast: 0.2 }],
  info: ['delivered', 'lateness p50 ms'],
};

const burst = {
  title: 'delay agent, burst intake',
  async run({ url }) {
    const n = names();
    const { connection, channel } = await openExchanges(url, n);
    const plain = `${n.prefix}.plain`;
    await channel.assertQueue(plain, { durable: true });
    // Due in an hour: every message goes into the ladder.
    const payload = body(Date.now() + 3_600_000);

    // Baseline: raw amqplib publishing the same messages to one durable queue, confirmed.
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < BURST_COUNT; i++)
      channel.sendToQueue(plain, payload, { persistent: true, messageId: String(i) });
    await channel.waitForConfirms();
    const plainRate = BURST_COUNT / (Number(process.hrtime.bigint() - t0) / 1e9);
    await channel.deleteQueue(plain);

    // The agent: from the publish of the first message to the last one entering the ladder.
    const agent = await startAgent(url, n);
    const t = delayTopology(n.prefix);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < BURST_COUNT; i++) {
      channel.publish(n.exchange, 'employee.engagement.create', payload, { persistent: true, messageId: String(i) });
    }
    await channel.waitForConfirms();
    const check = await connection.createChannel();
    for (;;) {
      const incoming = (await check.checkQueue(t.incoming)).messageCount;
      let laddered = 0;
      for (let level = 0; level < LEVELS; level++)
        laddered += (await check.checkQueue(t.waitQueue(level))).messageCount;
      if (incoming === 0 && laddered >= BURST_COUNT) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const agentRate = BURST_COUNT / (Number(process.hrtime.bigint() - t0) / 1e9);
    await agent.stop();
    await cleanup(check, n);
    await connection.close();
    return {
      medians: { 'delay agent intake': { 'msg/s': agentRate }, 'raw amqplib to one queue': { 'msg/s': plainRate } },
      samples: {},
    };
  },
  ours: 'delay agent intake',
  targets: [{ figure: 'msg/s', baseline: 'raw amqplib to one queue', atLeast: 0.5 }],
};

module.exports = [steady, burst];
