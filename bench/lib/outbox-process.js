// The outbox benchmark's contenders, each a Nest app with TypeORM and
// @nestjs-cls/transactional on the local PostgreSQL, in a process of its own:
//   'bare transaction'       a @Transactional() method that inserts one row, no event
//   'transaction + outbox'   the same method with @MoEvent below @Transactional(), AMQP__OUTBOX=postgres
//                            (its event is a row of the transaction; the relay in the same process sends it)
// The outbox one also measures, on request, its relay draining rows committed at once
// against MoEventsService.publish() of the same events outside a transaction (the
// direct path), and the latency from commit to delivery at a steady commit rate.
require('reflect-metadata');
const { forkChild } = require('./child');
const { randomUUID } = require('node:crypto');

const KINDS = ['bare transaction', 'transaction + outbox'];

async function forkOutboxContender(kind, env) {
  if (!KINDS.includes(kind)) throw new Error(`unknown outbox contender ${kind}`);
  const { request, close } = await forkChild(__filename, [kind], kind, env);
  const ask = (job) => request({ job }).then((m) => m.figures);
  return {
    name: kind,
    measure: (count, concurrency) => ask({ task: 'transaction', count, concurrency }),
    direct: { name: 'direct publish()', measure: (count) => ask({ task: 'direct', count }) },
    relay: { name: 'outbox relay', measure: (count) => ask({ task: 'relay', count }) },
    latency: (rate, seconds) => ask({ task: 'latency', rate, seconds }),
    close,
  };
}

async function child() {
  const [kind] = process.argv.slice(2);
  const { ClsPluginTransactional, Transactional, TransactionHost } = require('@nestjs-cls/transactional');
  const { TransactionalAdapterTypeOrm } = require('@nestjs-cls/transactional-adapter-typeorm');
  const { Injectable, Module } = require('@nestjs/common');
  const { NestFactory } = require('@nestjs/core');
  const { TypeOrmModule, getDataSourceToken } = require('@nestjs/typeorm');
  const { ClsModule } = require('nestjs-cls');
  const { EntitySchema } = require('typeorm');
  const amqp = require('amqplib');
  const { MoAmqpModule, MoEvent, MoEventsService } = require('../..');
  const { run } = require('./harness');
  const { percentile } = require('./stats');

  const { BENCH_PG_URL: pgUrl, BENCH_AMQP_URL: amqpUrl, BENCH_EXCHANGE: exchange } = process.env;
  const { BENCH_TABLE: rowsTable, BENCH_OUTBOX: outboxTable, BENCH_QUEUE: queue } = process.env;
  const outbox = kind === 'transaction + outbox';
  const Engagement = new EntitySchema({
    name: 'Engagement',
    tableName: rowsTable,
    columns: { uuid: { type: 'uuid', primary: true }, title: { type: 'text' } },
  });
  const DATE = new Date('2019-03-24T13:02:15.132Z');

  class Engagements {
    constructor(txHost, events) {
      this.txHost = txHost;
      this.events = events;
    }
    async create(uuid) {
      await this.txHost.tx.getRepository(Engagement).insert({ uuid, title: 'Teacher' });
      return uuid;
    }
  }
  const descriptor = () => Object.getOwnPropertyDescriptor(Engagements.prototype, 'create');
  if (outbox)
    MoEvent('employee', 'engagement', 'create', { time: () => DATE })(Engagements.prototype, 'create', descriptor());
  Transactional()(Engagements.prototype, 'create', descriptor());
  Reflect.defineMetadata('design:paramtypes', [TransactionHost, MoEventsService], Engagements);
  Injectable()(Engagements);

  class BenchModule {}
  Module({
    imports: [
      TypeOrmModule.forRoot({ type: 'postgres', url: pgUrl, entities: [Engagement], extra: { max: 20 } }),
      ClsModule.forRoot({
        global: true,
        plugins: [
          new ClsPluginTransactional({
            imports: [TypeOrmModule],
            adapter: new TransactionalAdapterTypeOrm({ dataSourceToken: getDataSourceToken() }),
          }),
        ],
      }),
      MoAmqpModule.forRoot({
        enabled: true,
        url: amqpUrl,
        exchange,
        outbox: outbox ? 'postgres' : 'off',
        outboxUrl: pgUrl,
        outboxTable,
        spoolDir: 'off',
      }),
    ],
    providers: [Engagements],
  })(BenchModule);
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false, abortOnError: false });
  const service = app.get(Engagements);
  const events = app.get(MoEventsService);

  // The messages' arrival, for the latency run only (a consumer at other times would bill its
  // work to this contender): a queue of this process bound to the exchange while it runs.
  const connection = await amqp.connect(amqpUrl.split(',')[0]);
  const channel = await connection.createChannel();
  await channel.prefetch(1000);

  const waitRelayed = async (target, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    while (events.counters.relayed < target) {
      if (Date.now() > deadline) throw new Error(`relayed ${events.counters.relayed} of ${target}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };

  const tasks = {
    // One committed transaction (with its event, for the outbox kind) per call; waits until
    // the relay has sent what this run wrote, so the next run starts from an empty table.
    transaction: async ({ count, concurrency }) => {
      const figures = await run(count, concurrency, () => service.create(randomUUID()));
      if (outbox) await waitRelayed(events.counters.outboxed, 60_000);
      return figures;
    },
    // The same events through MoEventsService.publish() outside a transaction, 100 in flight.
    direct: ({ count }) =>
      run(count, 100, () => events.publish('employee', 'engagement', 'create', randomUUID(), { time: DATE })),
    // `count` events written in one transaction; from its commit, the time until the relay has had
    // them all confirmed (msg/s), and this process's CPU over that time per message.
    relay: async ({ count }) => {
      const txHost = app.get(TransactionHost);
      await txHost.withTransaction(async () => {
        for (let i = 0; i < count; i += 500) {
          const batch = Math.min(500, count - i);
          await Promise.all(
            Array.from({ length: batch }, () =>
              events.publish('employee', 'engagement', 'create', randomUUID(), { time: DATE }),
            ),
          );
        }
      });
      const cpu = process.cpuUsage();
      const started = process.hrtime.bigint();
      await waitRelayed(events.counters.outboxed, 120_000);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const { user, system } = process.cpuUsage(cpu);
      return { 'msg/s': count / seconds, 'cpu µs/msg': (user + system) / count };
    },
    // `rate` commits a second for `seconds`, each with its event; from the start of each
    // transaction to its message's delivery to a consumer here: commit to confirm, with the
    // transaction itself and the delivery on top (an upper bound; a message can reach the
    // consumer before the commit's promise has resolved in this process, so that end is not used).
    latency: async ({ rate, seconds }) => {
      const total = rate * seconds;
      const committedAt = new Map(); // by uuid: when its transaction started
      const arrivedAt = new Map();
      let done;
      const all = new Promise((resolve) => (done = resolve));
      await channel.assertQueue(queue, { durable: true });
      await channel.bindQueue(queue, exchange, '#');
      const { consumerTag } = await channel.consume(queue, (m) => {
        channel.ack(m);
        arrivedAt.set(JSON.parse(m.content.toString()).uuid, process.hrtime.bigint());
        if (arrivedAt.size === total) done();
      });
      const started = Date.now();
      const pending = [];
      for (let i = 0; i < total; i++) {
        const due = started + (i * 1000) / rate;
        const wait = due - Date.now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
        const uuid = randomUUID();
        committedAt.set(uuid, process.hrtime.bigint());
        pending.push(service.create(uuid));
      }
      await Promise.all(pending);
      const committing = (Date.now() - started) / 1000;
      await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 30_000))]);
      await channel.cancel(consumerTag);
      await channel.deleteQueue(queue);
      const latencies = [...committedAt].flatMap(([uuid, t]) => {
        const arrived = arrivedAt.get(uuid);
        return arrived === undefined ? [] : [Number(arrived - t) / 1e6];
      });
      return {
        'commits/s': total / committing,
        'p50 ms': percentile(latencies, 50),
        'p99 ms': percentile(latencies, 99),
        arrived: latencies.length,
      };
    },
  };

  process.on('disconnect', () => process.exit(1));
  process.on('message', async ({ job, close }) => {
    try {
      if (close) {
        await connection.close().catch(() => undefined);
        await app.close();
        process.exit(0);
      }
      process.send({ figures: await tasks[job.task](job) });
    } catch (err) {
      process.send({ error: err.stack || err.message });
    }
  });
  process.send({ ready: true });
}

if (require.main === module) {
  child().catch((err) => {
    console.error(`bench outbox contender failed: ${err.stack || err.message}`);
    process.exit(1);
  });
}

module.exports = { forkOutboxContender };
