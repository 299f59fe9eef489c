import { TestingModule } from '@nestjs/testing';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { MoAmqpConfigError, MoAmqpHealthIndicator, MoEventsService, MoPublishError } from '../../lib';
import { DiskSpool } from '../../lib/spool/disk-spool';
import { bootApp, testSpoolDir } from '../support/app';
import { BROKER_URL, Collector, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { until } from '../support/until';

const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

describe('the durable spool', () => {
  let broker: TestBroker;
  let exchange: string;
  let collector: Collector;
  let proxy: TcpProxy | undefined;
  let app: TestingModule | undefined;
  let logger: CapturingLogger;

  beforeEach(async () => {
    broker = await TestBroker.connect();
    exchange = uniqueName('spool');
    collector = await broker.collect(exchange);
    logger = new CapturingLogger();
  });

  afterEach(async () => {
    proxy?.unblock();
    await app?.close();
    await proxy?.close();
    await broker.close();
    app = undefined;
    proxy = undefined;
  });

  it('keeps what the broker cannot take on disk, answers at once, and sends it in order when it is back', async () => {
    proxy = await TcpProxy.start();
    app = await bootApp({ enabled: true, url: proxy.url, exchange, spoolDir: testSpoolDir() }, { logger });
    const events = app.get(MoEventsService);
    expect((await events.publish('employee', 'it', 'create', uuid(0))).status).toBe('confirmed');

    proxy.block();
    await until(() => !events.connected, 'the disconnect to be noticed');
    const started = Date.now();
    const spooled = [];
    for (let i = 1; i <= 20; i++) spooled.push(await events.publish('employee', 'it', 'update', uuid(i)));
    expect(spooled.every((r) => r.status === 'spooled')).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000); // each one answered after its fsync, not a timeout
    expect(events.spoolStats).toMatchObject({ records: 20 });
    await collector.waitFor(1);

    proxy.unblock();
    const messages = await collector.waitFor(21, 15_000);
    expect(messages.map((m) => JSON.parse(m.content.toString()).uuid)).toEqual(
      Array.from({ length: 21 }, (_, i) => uuid(i)),
    );
    expect(messages.slice(1).map((m) => m.properties.messageId)).toEqual(spooled.map((r) => r.messageId));
    await until(() => events.counters.resent === 20, 'the spool to be done');
    expect(events.counters).toMatchObject({ published: 21, confirmed: 1, spooled: 20, resent: 20 });
    expect(events.spoolStats).toMatchObject({ records: 0 });
  });

  it('at shutdown spools what the broker has not confirmed within the bound, and the next start sends it', async () => {
    proxy = await TcpProxy.start();
    const spoolDir = testSpoolDir();
    const options = { enabled: true, exchange, spoolDir, publishTimeoutMs: 60_000, shutdownTimeoutMs: 300 };
    app = await bootApp({ ...options, url: proxy.url }, { logger });
    const events = app.get(MoEventsService);
    expect((await events.publish('employee', 'it', 'create', uuid(0))).status).toBe('confirmed');
    proxy.pause(); // connected, but the broker no longer answers
    const inFlight = Array.from({ length: 10 }, (_, i) => events.publish('employee', 'it', 'update', uuid(i + 1)));
    const started = Date.now();
    await app.close();
    app = undefined;
    expect(Date.now() - started).toBeLessThan(8_000);
    const results = await Promise.all(inFlight);
    expect(results.map((r) => r.status)).toEqual(Array(10).fill('spooled'));
    expect(logger.text).toContain('10 event(s) wait in the spool for the next start');
    expect(logger.text).toContain('did not answer the close within 2000 ms: connection cut');

    app = await bootApp({ ...options, url: BROKER_URL }, { logger });
    const messages = await collector.waitFor(11, 10_000);
    const ids = new Set(messages.map((m) => m.properties.messageId));
    for (const r of results) expect(ids.has(r.messageId)).toBe(true);
  });

  it('refuses to start with a spool directory it cannot write in, naming the variable and the path', async () => {
    const file = join(testSpoolDir(), 'a-file');
    fs.writeFileSync(file, '');
    const err = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir: file }, { logger }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MoAmqpConfigError);
    expect((err as Error).message).toContain(`AMQP__SPOOL_DIR (spoolDir): received ${JSON.stringify(file)}`);
    expect((err as Error).message).toContain(
      `a directory this process can create and write in, or off (${file} exists and is not a directory)`,
    );
  });

  it('refuses clearly once the spool is full, and still sends what it holds', async () => {
    proxy = await TcpProxy.start();
    app = await bootApp(
      { enabled: true, url: proxy.url, exchange, spoolDir: testSpoolDir(), spoolMaxBytes: 1_024 },
      { logger },
    );
    const events = app.get(MoEventsService);
    proxy.block();
    await until(() => !events.connected, 'the disconnect to be noticed');
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      outcomes.push(
        await events.publish('employee', 'it', 'create', uuid(i)).then(
          (r) => r.status,
          (err: MoPublishError) => `${err.reason}: ${err.message}`,
        ),
      );
    }
    const kept = outcomes.filter((o) => o === 'spooled').length;
    expect(kept).toBeGreaterThan(0);
    expect(outcomes.slice(kept).every((o) => o.startsWith('spool-full: '))).toBe(true);
    expect(outcomes[kept]).toContain('the spool is full (AMQP__SPOOL_MAX_BYTES = 1024)');
    proxy.unblock();
    await collector.waitFor(kept, 15_000);
  });

  it('sends at start what a process that is gone left, setting a damaged record aside and saying so', async () => {
    const spoolDir = testSpoolDir();
    const left = new DiskSpool(spoolDir, 1_000_000);
    for (const i of [1, 2, 3]) {
      await left.append({
        exchange,
        routingKey: 'org_unit.role.create',
        content: Buffer.from(`{"uuid": "${uuid(i)}", "time": "2021-07-27"}`),
        properties: { persistent: true, messageId: `left-${i}` },
      });
    }
    await left.close();
    const [own] = fs.readdirSync(spoolDir);
    fs.renameSync(join(spoolDir, own), join(spoolDir, '999999-crashed')); // its process is gone
    const [segment] = fs.readdirSync(join(spoolDir, '999999-crashed'));
    const file = join(spoolDir, '999999-crashed', segment);
    const data = fs.readFileSync(file);
    data[data.indexOf('MOS1', 4) + 30] ^= 0xff; // damage the second record
    fs.writeFileSync(file, data);

    app = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir }, { logger });
    const messages = await collector.waitFor(2, 10_000);
    expect(messages.map((m) => m.properties.messageId)).toEqual(['left-1', 'left-3']);
    expect(logger.text).toMatch(
      /is damaged \(checksum mismatch\): set aside in \S+damaged\/\S+; the records around it are sent/,
    );
    expect(fs.readdirSync(join(spoolDir, 'damaged'))).toHaveLength(1);
    // Once sent, the adopted directory goes.
    await until(() => fs.readdirSync(spoolDir).every((d) => !d.includes('crashed')), 'the adopted directory to go');
  });

  it('sets aside what an exchange refuses for good, says where, and sends the rest', async () => {
    const spoolDir = testSpoolDir();
    const fanout = uniqueName('fanout');
    broker.track(fanout);
    await broker.channel.assertExchange(fanout, 'fanout', { durable: true }); // not the topic exchange it was
    const left = new DiskSpool(spoolDir, 1_000_000);
    for (const [i, to] of [exchange, fanout, exchange].entries()) {
      await left.append({
        exchange: to,
        routingKey: 'org_unit.role.create',
        content: Buffer.from(`{"uuid": "${uuid(i)}", "time": "2021-07-27"}`),
        properties: { persistent: true, messageId: `left-${i}` },
      });
    }
    await left.close();
    fs.renameSync(join(spoolDir, fs.readdirSync(spoolDir)[0]), join(spoolDir, '999999-crashed'));

    app = await bootApp({ enabled: true, url: BROKER_URL, exchange, spoolDir }, { logger });
    const messages = await collector.waitFor(2, 10_000);
    expect(messages.map((m) => m.properties.messageId)).toEqual(['left-0', 'left-2']);
    expect(logger.text).toContain(`RabbitMQ refuses exchange "${fanout}"`);
    expect(logger.text).toContain('PRECONDITION_FAILED');
    const [aside] = fs.readdirSync(join(spoolDir, 'refused'));
    expect(logger.text).toContain(`1 spooled event(s) for it are set aside in ${join(spoolDir, 'refused', aside)}`);
    const damage: string[] = [];
    const kept = await new DiskSpool(spoolDir, 1_000_000, (m) => damage.push(m)).readSegment(
      join(spoolDir, 'refused', aside),
    );
    expect(damage).toEqual([]);
    expect(kept.map((r) => [r.exchange, r.properties.messageId])).toEqual([[fanout, 'left-1']]);
    await until(() => app!.get(MoEventsService).spoolStats?.records === 0, 'the spool to be empty');
  });

  it('reports itself down through the health indicator while the broker is away, with the spool depth', async () => {
    proxy = await TcpProxy.start();
    app = await bootApp({ enabled: true, url: proxy.url, exchange, spoolDir: testSpoolDir() }, { logger });
    const health = app.get(MoAmqpHealthIndicator);
    expect(await health.isHealthy()).toEqual({
      amqp: { status: 'up', enabled: true, connected: true, spooled: 0, spoolBytes: 0, oldestSpooledSecondsAgo: null },
    });
    proxy.block();
    const events = app.get(MoEventsService);
    await until(() => !events.connected, 'the disconnect to be noticed');
    await events.publish('employee', 'it', 'create', uuid(1));
    expect(await health.isHealthy('broker')).toEqual({
      broker: {
        status: 'down',
        enabled: true,
        connected: false,
        brokerError: expect.any(String),
        spooled: 1,
        spoolBytes: expect.any(Number),
        oldestSpooledSecondsAgo: 0,
      },
    });
  });
});
