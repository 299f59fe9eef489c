// The delay agent in its own process (mo-amqp delay-agent), as it would run:
// (a) steady: messages at a fixed rate, each due 0-60 s later: delivered, early,
//     lost, lateness, the agent's peak RSS; (b) burst: how fast it takes messages
//     in, against raw amqplib publishing the same messages to one durable queue.
const amqp = require('amqplib');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const { percentile } = require('../lib/stats');
const { LEVELS, delayTopology } = require('../../dist/delay/delay-ladder');

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const STEADY_COUNT = Number(process.env.BENCH_DELAY_COUNT || 100_000);
const STEADY_RATE = 2_000;
const MAX_DELAY_MS = 60_000;
const BURST_COUNT = Number(process.env.BENCH_DELAY_COUNT || 100_000);

function names() {
  const prefix = `bench.delay.${process.pid}.${Date.now().toString(36)}`;
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

const steady = {
  title: `delay agent, steady ${STEADY_RATE}/s, due 0-60 s`,
  async run({ url }) {
    const n = names();
    const { connection, channel } = await openExchanges(url, n);
    const agent = await startAgent(url, n);
    const due = new Map();
    const arrived = new Map();
    const consumer = await connection.createChannel();
    await consumer.assertQueue(n.sink, { durable: true });
    await consumer.bindQueue(n.sink, n.delayed, '#');
    await consumer.consume(n.sink, (m) => m && arrived.set(m.properties.messageId, Date.now()), { noAck: true });
    try {
      // A fixed rate: every 10 ms, the messages the schedule says are owed by now.
      const started = Date.now();
      let sent = 0;
      while (sent < STEADY_COUNT) {
        const owed = Math.min(STEADY_COUNT, Math.floor(((Date.now() - started) / 1000) * STEADY_RATE));
        for (; sent < owed; sent++) {
          const id = randomUUID();
          const at = Date.now() + Math.floor(Math.random() * MAX_DELAY_MS);
          due.set(id, at);
          channel.publish(n.exchange, 'employee.engagement.create', body(at), { persistent: true, messageId: id });
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await channel.waitForConfirms();
      const lastDue = Math.max(...due.values());
      while (arrived.size < due.size && Date.now() < lastDue + 15_000) {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    } finally {
      await agent.stop();
    }
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
    };
    await connection.close();
    const admin = await (await amqp.connect(url)).createChannel();
    await cleanup(admin, n);
    await admin.connection.close();
    return { medians: { agent: figures }, samples: { agent: [figures] } };
  },
  ours: 'agent',
  // Absolute targets: the figures are counts and times, not ratios against a baseline.
  absolute: [
    { figure: 'early', atMost: 0 },
    { figure: 'lost', atMost: 0 },
    { figure: 'lateness p99 ms', atMost: 100 },
    { figure: 'agent peak RSS MB', atMost: 150 },
  ],
  info: ['delivered', 'lateness p50 ms', 'lateness max ms'],
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
  targets: [{ figure: 'msg/s', baseline: 'raw amqplib to one queue' }],
};

module.exports = [steady, burst];
