// The PostgreSQL outbox (issue 15): a transaction with its event against the bare
// transaction; the relay draining committed rows against publish() of the same events
// outside a transaction; and the time from commit to delivery at a steady 1,000 commits/s.
// Each contender is a Nest app with TypeORM and @nestjs-cls/transactional in a process of its own.
const amqp = require('amqplib');
const { Client } = require('pg');
const { alternate } = require('../lib/harness');
const { forkOutboxContender } = require('../lib/outbox-process');
const { migrateOutboxTable } = require('../../dist/outbox/outbox-table');

const PG_URL = process.env.MO_PG_URL || 'postgres://mo_amqp:mo_amqp@127.0.0.1:5432/mo_amqp_test';
const TRANSACTIONS = 2_000;
const RELAYED = 10_000;
const RATE = 1_000;
const RATE_SECONDS = 10;

async function sql(text) {
  const client = new Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** Tables, exchange and sink queue of one scenario, and the contenders' environment. */
async function setUp(url, name) {
  const id = `bench_${name}_${process.pid}`;
  const env = {
    BENCH_PG_URL: PG_URL,
    BENCH_AMQP_URL: url,
    BENCH_EXCHANGE: `bench.${name}.${process.pid}`,
    BENCH_QUEUE: `bench.${name}.${process.pid}.sink`,
    BENCH_TABLE: `${id}_rows`,
    BENCH_OUTBOX: `${id}_outbox`,
  };
  await sql(`CREATE TABLE IF NOT EXISTS "${env.BENCH_TABLE}" (uuid uuid PRIMARY KEY, title text NOT NULL)`);
  await migrateOutboxTable({ outboxUrl: PG_URL, outboxTable: env.BENCH_OUTBOX });
  const connection = await amqp.connect(url.split(',')[0]);
  const channel = await connection.createChannel();
  await channel.assertExchange(env.BENCH_EXCHANGE, 'topic', { durable: true });
  const tearDown = async () => {
    await channel.deleteQueue(env.BENCH_QUEUE); // the latency run's, if it was cut short
    await channel.deleteExchange(env.BENCH_EXCHANGE);
    await connection.close();
    await sql(`DROP TABLE IF EXISTS "${env.BENCH_TABLE}", "${env.BENCH_OUTBOX}"`);
    await sql(`DROP FUNCTION IF EXISTS "${env.BENCH_OUTBOX}_notify"()`);
  };
  return { env, tearDown };
}

module.exports = [
  {
    title: 'outbox, transaction with its event, concurrency 10',
    async run({ url, rounds }) {
      const { env, tearDown } = await setUp(url, 'outbox_tx');
      const bare = await forkOutboxContender('bare transaction', env);
      const outbox = await forkOutboxContender('transaction + outbox', env);
      try {
        return await alternate([bare, outbox], rounds, (c) => c.measure(TRANSACTIONS, 10));
      } finally {
        await bare.close();
        await outbox.close();
        await tearDown();
      }
    },
    ours: 'transaction + outbox',
    targets: [
      // "At most 1.2× the time of the bare transaction": at least 1/1.2 of its rate.
      { figure: 'msg/s', baseline: 'bare transaction', atLeast: 0.83 },
      { figure: 'cpu µs/msg', baseline: 'bare transaction' },
    ],
  },
  {
    title: 'outbox, relay',
    async run({ url, rounds }) {
      const { env, tearDown } = await setUp(url, 'outbox_relay');
      const outbox = await forkOutboxContender('transaction + outbox', env);
      try {
        const result = await alternate([outbox.relay, outbox.direct], rounds, (c) => c.measure(RELAYED));
        const latency = await outbox.latency(RATE, RATE_SECONDS);
        const scenario = `outbox, transaction start to delivery at ${RATE} commits/s for ${RATE_SECONDS} s`;
        return {
          ...result,
          rows: [
            { scenario, figure: 'commits/s', value: latency['commits/s'] },
            { scenario, figure: 'delivered', value: latency.arrived, atLeast: RATE * RATE_SECONDS },
            { scenario, figure: 'p50 ms', value: latency['p50 ms'] },
            { scenario, figure: 'p99 ms', value: latency['p99 ms'], atMost: 50 },
          ],
        };
      } finally {
        await outbox.close();
        await tearDown();
      }
    },
    ours: 'outbox relay',
    targets: [
      { figure: 'msg/s', baseline: 'direct publish()', atLeast: 0.8 },
      { figure: 'cpu µs/msg', baseline: 'direct publish()' },
    ],
  },
];
