import * as amqp from 'amqplib';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { BROKER_URL, uniqueName } from '../support/broker';
import { Fixture, drainQueue, faultCounts, report, startBroker, stopBroker } from './support';

const COUNT = 1_000;
// Far above what the start may take: a start that waited for the broker would show.
const CONNECT_TIMEOUT_MS = 30_000;

/** The sink, declared while the broker runs: a durable queue bound to all of the exchange, outliving the restart. */
async function sink(exchange: string, queue: string): Promise<void> {
  const connection = await amqp.connect(BROKER_URL);
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, exchange, '#');
  await connection.close();
}

async function removeSink(exchange: string, queue: string): Promise<void> {
  const connection = await amqp.connect(BROKER_URL);
  const channel = await connection.createChannel();
  await channel.deleteQueue(queue);
  await channel.deleteExchange(exchange);
  await connection.close();
}

describe('started while the broker is stopped (AMQP__START_WITHOUT_BROKER=auto, spool on)', () => {
  it(`boots at once, spools ${COUNT} events, and sends every one once the broker is started`, async () => {
    const exchange = uniqueName('startless');
    const queue = `${exchange}.sink`;
    await sink(exchange, queue);
    const spoolDir = fs.mkdtempSync(join(process.cwd(), 'startless-'));
    await stopBroker();
    let app: Fixture | undefined;
    try {
      const started = Date.now();
      app = Fixture.start('fault-publisher.js', {
        ENABLE_AMQP: 'true',
        AMQP__URL: BROKER_URL,
        AMQP__EXCHANGE: exchange,
        AMQP__SPOOL_DIR: spoolDir,
        AMQP__CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
      });
      await app.line('ready', CONNECT_TIMEOUT_MS + 10_000);
      const bootMs = Date.now() - started;
      app.send('connected?');
      expect(await app.line('connected')).toBe('connected false');
      app.send(`publish ${COUNT} 0`);
      const statuses = JSON.parse((await app.line('done')).slice(5)) as { spooled?: number; confirmed?: number };
      await startBroker();

      // Sent by the app once its channel opens: the spool drains on its own.
      const { copies, total } = await drainQueue([BROKER_URL], queue, COUNT, 90_000);
      const counts = faultCounts(COUNT, statuses, { distinct: copies.size, total });
      report(`started with the broker stopped (boot ${bootMs} ms), ${COUNT} spooled, broker started`, counts);
      expect(bootMs).toBeLessThan(10_000);
      expect(counts.spooled).toBe(COUNT);
      expect(counts.lost).toBe(0);
      app.send('connected?');
      expect(await app.line('connected')).toBe('connected true');
    } finally {
      await app?.stop();
      await startBroker(); // never leave the shared broker down
      await removeSink(exchange, queue).catch(() => undefined);
    }
  }, 240_000);
});
