import { Injectable } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import * as amqp from 'amqplib';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { MoAmqpModule, MoEvent, MoEventsService } from '../../lib';
import { SPOOL_LEASE_MS } from '../../lib/spool/disk-spool';
import { BROKER_URL, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import {
  Fixture,
  cluster,
  drainQueue,
  faultCounts,
  report,
  restartBroker,
  startBroker,
  stopBroker,
  uuid,
} from './support';

// In the test file's temporary working directory, which is deleted afterwards (test/support/isolate-cwd.ts).
const tempDir = (name: string) => fs.mkdtempSync(join(process.cwd(), `${name}-`));

@Injectable()
class Engagements {
  /** A business write that publishes once it has resolved. */
  @MoEvent('employee', 'engagement', 'create', { uuid: (_r: void, i: number) => uuid(i) })
  async create(_i: number): Promise<void> {}
}

/** Declares an exchange and a durable queue bound to all of it: the sink that outlives restarts. */
async function sink(url: string, exchange: string, queue: string, quorum = false): Promise<void> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(queue, { durable: true, arguments: quorum ? { 'x-queue-type': 'quorum' } : {} });
  await channel.bindQueue(queue, exchange, '#');
  await connection.close();
}

async function bootPublisher(url: string, exchange: string, spoolDir: string): Promise<TestingModule> {
  const app = await Test.createTestingModule({
    imports: [MoAmqpModule.forRoot({ enabled: true, url, exchange, spoolDir, publishTimeoutMs: 3_000 })],
    providers: [Engagements],
  })
    .setLogger(new CapturingLogger())
    .compile();
  await app.init();
  return app;
}

/** `count` @MoEvent calls, `concurrency` at a time; `during(i)` runs once call i has been made. */
async function burst(
  service: Engagements,
  count: number,
  concurrency: number,
  at: number,
  during: () => Promise<unknown>,
) {
  let next = 0;
  let fault: Promise<unknown> | undefined;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        if (i === at) fault = during();
        await service.create(i);
      }
    }),
  );
  await fault;
}

describe('nothing lost', () => {
  let broker: TestBroker;

  beforeEach(async () => {
    broker = await TestBroker.connect();
  });

  afterEach(async () => {
    broker = await TestBroker.reconnect(broker);
    await broker.close();
  });

  /** A new exchange with a durable queue bound to it on the local broker, both deleted after the test. */
  async function freshSink(name: string): Promise<{ exchange: string; queue: string }> {
    const exchange = uniqueName(name);
    const queue = `${exchange}.sink`;
    broker.track(exchange);
    broker.trackQueue(queue);
    await sink(BROKER_URL, exchange, queue);
    return { exchange, queue };
  }

  it('the broker stopped and restarted during a 10,000-event burst from @MoEvent methods', async () => {
    const { exchange, queue } = await freshSink('burst');
    const app = await bootPublisher(BROKER_URL, exchange, tempDir('burst'));
    const events = app.get(MoEventsService);
    try {
      await burst(app.get(Engagements), 10_000, 100, 2_000, restartBroker);
      const { copies, total } = await drainQueue([BROKER_URL], queue, 10_000, 90_000);
      const counters = events.counters;
      const counts = faultCounts(10_000, counters, { distinct: copies.size, total });
      report('broker restarted during a @MoEvent burst', counts);
      expect(counts.lost).toBe(0);
      expect(counters.confirmed + counters.spooled).toBe(10_000);
      expect(counters.decoratorFailures).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('the process killed (SIGKILL) with 1,000 events spooled while the broker was down', async () => {
    const { exchange, queue } = await freshSink('crash');
    const spoolDir = tempDir('crash');
    const env = { ENABLE_AMQP: 'true', AMQP__URL: BROKER_URL, AMQP__EXCHANGE: exchange, AMQP__SPOOL_DIR: spoolDir };

    const first = Fixture.start('fault-publisher.js', env);
    await first.line('ready');
    await stopBroker();
    // Until it notices, a publish waits for its confirm; then it spools at once.
    for (let tries = 0; tries < 100; tries++) {
      first.send('connected?');
      if ((await first.line('connected')) === 'connected false') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    first.send('publish 1000 0');
    const statuses = JSON.parse((await first.line('done')).slice(5));
    await first.stop('SIGKILL');
    await startBroker();

    const second = Fixture.start('fault-publisher.js', env); // adopts the spool of the one that died
    await second.line('ready');
    const { copies, total } = await drainQueue([BROKER_URL], queue, 1_000, 60_000);
    await second.stop();
    const counts = faultCounts(1_000, statuses, { distinct: copies.size, total });
    report('process killed with events spooled, broker down', counts);
    expect(counts.spooled).toBe(1_000);
    expect(counts.lost).toBe(0);
  });

  it('in a three-node cluster, the node leading the quorum queue killed mid-burst', async () => {
    await cluster('start');
    const urls = (await cluster('urls')).split(',');
    const exchange = uniqueName('cluster');
    const queue = `${exchange}.sink`;
    await sink(urls[1], exchange, queue, true);
    const leader = Number(await cluster('leader', queue));
    // Connect through the leader first, so the kill takes the app's connection too.
    const ordered = [urls[leader - 1], ...urls.filter((_, i) => i !== leader - 1)].join(',');
    const app = await bootPublisher(ordered, exchange, tempDir('cluster'));
    const events = app.get(MoEventsService);
    try {
      await burst(app.get(Engagements), 10_000, 100, 3_000, () => cluster('kill-node', String(leader)));
      const survivors = urls.filter((_, i) => i !== leader - 1);
      const { copies, total } = await drainQueue(survivors, queue, 10_000, 120_000);
      const counters = events.counters;
      const counts = faultCounts(10_000, counters, { distinct: copies.size, total });
      report(`cluster: quorum leader (node ${leader}) killed mid-burst`, counts);
      expect(counts.lost).toBe(0);
    } finally {
      await app.close();
      await cluster('stop');
    }
  });

  it('a consumer killed (SIGKILL) mid-batch: every message handled at least once', async () => {
    const exchange = uniqueName('consumer');
    const queue = `${exchange}.work`;
    broker.track(exchange);
    broker.trackQueue(queue);
    broker.trackQueue(`${queue}.dlq`);
    const handled = join(tempDir('consumer'), 'handled.txt');
    const env = {
      ENABLE_AMQP: 'true',
      AMQP__URL: BROKER_URL,
      AMQP__EXCHANGE: exchange,
      AMQP__SPOOL_DIR: 'off',
      CONSUMER_QUEUE: queue,
      HANDLED_FILE: handled,
    };
    const first = Fixture.start('fault-consumer.js', env);
    await first.line('ready');
    const channel = await broker.connection.createConfirmChannel();
    for (let i = 0; i < 2_000; i++) {
      channel.publish(
        exchange,
        'employee.engagement.update',
        Buffer.from(`{"uuid": "${uuid(i)}", "time": "2021-07-27"}`),
        {
          persistent: true,
        },
      );
    }
    await channel.waitForConfirms();
    const lines = () => (fs.existsSync(handled) ? fs.readFileSync(handled, 'utf8').split('\n').filter(Boolean) : []);
    while (lines().length < 500) await new Promise((resolve) => setTimeout(resolve, 20));
    await first.stop('SIGKILL'); // with up to 20 deliveries in hand
    const second = Fixture.start('fault-consumer.js', env);
    await second.line('ready');
    const deadline = Date.now() + 60_000;
    while (new Set(lines()).size < 2_000 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    await second.stop();
    const all = lines();
    const unique = new Set(all);
    const counts = faultCounts(2_000, { confirmed: 2_000 }, { distinct: unique.size, total: all.length });
    report('consumer killed mid-batch', counts);
    expect(counts.lost).toBe(0);
  });

  /**
   * A publisher process spools `count` events (uuids 0..count-1) with the broker
   * unreachable (it boots through a proxy whose port then closes; the shared broker
   * keeps running), and is killed (SIGKILL). Resolves with what it said of them and
   * the spool directory it left.
   */
  async function spoolThenDie(exchange: string, spoolDir: string, count: number) {
    const proxy = await TcpProxy.start();
    const env = { ENABLE_AMQP: 'true', AMQP__URL: proxy.url, AMQP__EXCHANGE: exchange, AMQP__SPOOL_DIR: spoolDir };
    const first = Fixture.start('fault-publisher.js', env);
    try {
      await first.line('ready');
      await proxy.close(); // connections cut, the port closed: reconnects are refused
      for (let tries = 0; tries < 100; tries++) {
        first.send('connected?');
        if ((await first.line('connected')) === 'connected false') break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      first.send(`publish ${count} 0`);
      const statuses = JSON.parse((await first.line('done')).slice(5)) as { spooled?: number; confirmed?: number };
      await first.stop('SIGKILL');
      const dirs = fs.readdirSync(spoolDir);
      expect(dirs).toEqual([expect.stringMatching(new RegExp(`^${first.child.pid}-[0-9a-f]{8}$`))]);
      return { statuses, dir: join(spoolDir, dirs[0]) };
    } finally {
      await first.stop('SIGKILL');
    }
  }

  /** The offsets of a segment's records, read from their headers. */
  function recordOffsets(data: Buffer): number[] {
    const offsets: number[] = [];
    for (let offset = 0; offset < data.length; offset += 12 + data.readUInt32BE(offset + 4)) offsets.push(offset);
    return offsets;
  }

  /** Backdates a spool directory and its owner file past the lease: as if its holder died long ago. */
  function leaseRunOut(dir: string): void {
    const old = new Date(Date.now() - SPOOL_LEASE_MS - 5_000);
    fs.utimesSync(join(dir, 'owner.json'), old, old);
    fs.utimesSync(dir, old, old);
  }

  /** A new publisher on the broker sends what was left; resolves with what a reader saw, and stops it. */
  async function restartAndDrain(exchange: string, spoolDir: string, queue: string, expected: number) {
    const env = { ENABLE_AMQP: 'true', AMQP__URL: BROKER_URL, AMQP__EXCHANGE: exchange, AMQP__SPOOL_DIR: spoolDir };
    const second = Fixture.start('fault-publisher.js', env);
    try {
      await second.line('ready');
      const seen = await drainQueue([BROKER_URL], queue, expected, 60_000);
      // A little longer: what should not come (a duplicate, a destroyed record) would come now.
      const late = await drainQueue([BROKER_URL], queue, 1, 3_000);
      for (const [id, n] of late.copies) seen.copies.set(id, (seen.copies.get(id) ?? 0) + n);
      // Once all is sent the adopted directory goes.
      const deadline = Date.now() + 10_000;
      while (fs.readdirSync(spoolDir).some((d) => d !== 'damaged') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return { copies: seen.copies, total: seen.total + late.total };
    } finally {
      await second.stop();
    }
  }

  it('spool damaged while the publisher is down: every record sent but the destroyed one, which is kept in damaged/', async () => {
    const { exchange, queue } = await freshSink('spool-damage');
    const spoolDir = tempDir('spool-damage');
    const { statuses, dir } = await spoolThenDie(exchange, spoolDir, 1_000);
    expect(statuses).toEqual({ spooled: 1_000 });

    // One record in the middle made undecodable (a byte of its payload flipped: checksum mismatch).
    const segment = join(dir, '00000001.spool');
    const data = fs.readFileSync(segment);
    const offsets = recordOffsets(data);
    expect(offsets).toHaveLength(1_000);
    const [from, to] = [offsets[500], offsets[501]];
    const record = JSON.parse(data.subarray(from + 12, to).toString()) as { b: string };
    const destroyed = [String(JSON.parse(Buffer.from(record.b, 'base64').toString()).uuid)];
    data[from + 12 + 20] ^= 0xff;
    fs.writeFileSync(segment, data);
    // A directory named like a segment, and owner.json emptied (as by a write cut short).
    fs.mkdirSync(join(dir, '00000002.spool'));
    fs.writeFileSync(join(dir, 'owner.json'), '');
    leaseRunOut(dir);

    const { copies, total } = await restartAndDrain(exchange, spoolDir, queue, 1_000 - destroyed.length);
    const seen = faultCounts(1_000, statuses, { distinct: copies.size, total });
    // The record destroyed on purpose is not lost: its bytes are kept in damaged/ (checked below).
    const counts = { ...seen, lost: seen.lost - destroyed.length, damaged: destroyed.length };
    report('spool damaged while the publisher was down', counts);
    const missing = Array.from({ length: 1_000 }, (_, i) => uuid(i)).filter((id) => !copies.has(id));
    expect(missing).toEqual(destroyed);
    expect(counts.lost).toBe(0);
    expect(counts.duplicates).toBe(0);
    // The damage is kept, not lost: the record's bytes as they were, and the directory.
    const aside = fs.readdirSync(join(spoolDir, 'damaged')).sort();
    expect(aside.map((f) => f.replace(/^\d+-[0-9a-f]{8}-/, '')).sort()).toEqual(['00000001.spool', '00000002.spool']);
    const bytes = aside.find((f) => f.endsWith('00000001.spool')) as string;
    expect(fs.readFileSync(join(spoolDir, 'damaged', bytes)).equals(data.subarray(from, to))).toBe(true);
    expect(fs.readdirSync(spoolDir)).toEqual(['damaged']);
  });

  it('an adopter killed while writing owner.json: nothing lost', async () => {
    const { exchange, queue } = await freshSink('adopter-killed');
    const spoolDir = tempDir('adopter-killed');
    const { statuses, dir } = await spoolThenDie(exchange, spoolDir, 1_000);
    expect(statuses).toEqual({ spooled: 1_000 });

    // What an adopter leaves when it dies right after its rename: the directory under
    // its new name, owner.json empty (a plain write cut short), and its own temporary
    // owner file half written (the atomic write cut short).
    const adopted = join(spoolDir, 'adopted-0123456789ab');
    fs.renameSync(dir, adopted);
    fs.writeFileSync(join(adopted, 'owner.json'), '');
    fs.writeFileSync(join(adopted, 'owner.json.999999.tmp'), '{"host":"');
    leaseRunOut(adopted);

    const { copies, total } = await restartAndDrain(exchange, spoolDir, queue, 1_000);
    const counts = faultCounts(1_000, statuses, { distinct: copies.size, total });
    report('adopter killed while writing owner.json', counts);
    expect(counts.lost).toBe(0);
    expect(fs.readdirSync(spoolDir)).toEqual([]); // sent, and the directory is gone; nothing set aside
  });

  it('publishing on while the spool drains after an outage: nothing told "spooled" is lost, nothing refused', async () => {
    const { exchange, queue } = await freshSink('drain-race');
    const proxy = await TcpProxy.start();
    const app = await bootPublisher(proxy.url, exchange, tempDir('drain-race'));
    const events = app.get(MoEventsService);
    const told = new Map<string, string>();
    let refused = 0;
    const publish = async (i: number) => {
      await events.publish('employee', 'engagement', 'update', uuid(i)).then(
        (r) => told.set(uuid(i), r.status),
        () => refused++,
      );
    };
    try {
      proxy.block(); // the broker unreachable: everything is spooled
      while (events.connected) await new Promise((resolve) => setTimeout(resolve, 20));
      let i = 0;
      for (; i < 3_000; i++) await publish(i);
      proxy.unblock(); // back: the spool drains while the app keeps publishing
      while (!events.connected) await new Promise((resolve) => setTimeout(resolve, 20));
      for (const end = Date.now() + 4_000; Date.now() < end; i++) {
        await publish(i);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const { copies, total } = await drainQueue([BROKER_URL], queue, told.size, 30_000);
      const statuses = { confirmed: 0, spooled: 0 };
      for (const status of told.values()) statuses[status as keyof typeof statuses]++;
      const counts = faultCounts(told.size, statuses, { distinct: copies.size, total });
      report('publishing on while the spool drains after an outage', { ...counts, refused });
      const lost = [...told].filter(([id]) => !copies.has(id));
      expect({ refused, lost: lost.slice(0, 5) }).toEqual({ refused: 0, lost: [] });
      expect(counts.lost).toBe(0);
    } finally {
      await app.close();
      await proxy.close();
    }
  });
});
