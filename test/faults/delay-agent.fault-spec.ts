import * as amqp from 'amqplib';
import { ChildProcess, execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startAgentProcess, stopProcess } from '../support/agent-process';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';

const ROOT = join(__dirname, '..', '..');
const run = promisify(execFile);

interface Names {
  exchange: string;
  delayedExchange: string;
  prefix: string;
  sink: string;
}

/** Publishes `count` events to the events exchange, each due `delayMs(i)` from now; returns id -> due. */
async function publish(names: Names, count: number, delayMs: (i: number) => number): Promise<Map<string, number>> {
  const connection = await amqp.connect(BROKER_URL);
  const channel = await connection.createConfirmChannel();
  const due = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const at = Date.now() + delayMs(i);
    const id = randomUUID();
    due.set(id, at);
    const body = `{"uuid": "${randomUUID()}", "time": "${new Date(at).toISOString()}"}`;
    channel.publish(names.exchange, 'employee.engagement.update', Buffer.from(body), {
      persistent: true,
      messageId: id,
    });
  }
  await channel.waitForConfirms();
  await connection.close();
  return due;
}

/**
 * Consumes the durable sink the delayed exchange feeds, reconnecting through a
 * broker restart: message id -> when it arrived. What arrives while it is
 * reconnecting waits in the sink and is stamped late, never early.
 */
async function readSink(names: Names, expected: number, timeoutMs: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const deadline = Date.now() + timeoutMs;
  while (seen.size < expected && Date.now() < deadline) {
    try {
      const connection = await amqp.connect(BROKER_URL);
      const closed = new Promise((resolve) => {
        connection.on('close', resolve);
        connection.on('error', resolve);
      });
      const channel = await connection.createChannel();
      await channel.consume(
        names.sink,
        (m) => m && !seen.has(String(m.properties.messageId)) && seen.set(String(m.properties.messageId), Date.now()),
        {
          noAck: true,
        },
      );
      while (seen.size < expected && Date.now() < deadline) {
        if (await Promise.race([closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 100))])) break;
      }
      await connection.close().catch(() => undefined);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200)); // the broker is restarting
    }
  }
  return seen;
}

describe('delay agent faults', () => {
  let names: Names;
  let broker: TestBroker;
  const agents: ChildProcess[] = [];

  beforeEach(async () => {
    const prefix = uniqueName('faultagent');
    names = {
      exchange: `${prefix}.events`,
      delayedExchange: `${prefix}.delayed`,
      prefix,
      sink: `${prefix}.sink`,
    };
    broker = await TestBroker.connect();
    broker.track(names.exchange);
    broker.track(names.delayedExchange);
    broker.trackDelayAgent(names.prefix);
    broker.trackQueue(names.sink);
    await broker.channel.assertExchange(names.exchange, 'topic', { durable: true });
    await broker.channel.assertExchange(names.delayedExchange, 'topic', { durable: true });
    await broker.channel.assertQueue(names.sink, { durable: true });
    await broker.channel.bindQueue(names.sink, names.delayedExchange, '#');
  });

  afterEach(async () => {
    for (const agent of agents.splice(0)) await stopProcess(agent, 'SIGTERM');
    broker = await TestBroker.reconnect(broker);
    await broker.close();
  });

  it('loses nothing when the agent is killed (SIGKILL) mid-stream', async () => {
    agents.push(await startAgentProcess(names));
    const due = await publish(names, 1_000, (i) => (i % 20) * 150); // due over 3 s
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await stopProcess(agents[0], 'SIGKILL');
    agents.push(await startAgentProcess(names));
    const seen = await readSink(names, due.size, 30_000);
    const lost = [...due.keys()].filter((id) => !seen.has(id));
    const early = [...seen].filter(([id, at]) => at < (due.get(id) as number));
    console.log(`agent SIGKILL: sent ${due.size}, delivered ${seen.size}, lost ${lost.length}, early ${early.length}`);
    expect(lost).toEqual([]);
    expect(early).toEqual([]);
  });

  it('loses nothing when the broker restarts with messages pending in the ladder', async () => {
    agents.push(await startAgentProcess(names));
    const due = await publish(names, 300, (i) => 3_000 + (i % 10) * 300); // pending 3-6 s
    await new Promise((resolve) => setTimeout(resolve, 500));
    const restart = await run('bash', [join(ROOT, 'scripts', 'rabbitmq.sh'), 'restart'], { timeout: 120_000 });
    expect(restart.stderr).toContain('RabbitMQ answers');
    // The agent reconnects on its own.
    const seen = await readSink(names, due.size, 60_000);
    const lost = [...due.keys()].filter((id) => !seen.has(id));
    console.log(`broker restart: sent ${due.size}, delivered ${seen.size}, lost ${lost.length}`);
    expect(lost).toEqual([]);
    const early = [...seen].filter(([id, at]) => at < (due.get(id) as number));
    expect(early).toEqual([]);
  });
});
