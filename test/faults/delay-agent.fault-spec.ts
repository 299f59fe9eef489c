import * as amqp from 'amqplib';
import { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { startAgentProcess, stopProcess } from '../support/agent-process';
import { delayTopology } from '../../lib/delay/delay-ladder';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { drainQueue, faultCounts, report, restartBroker } from './support';

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

/** The delayed copies in the sink, by message id, through broker restarts. */
function readSink(names: Names, expected: number, timeoutMs: number) {
  return drainQueue([BROKER_URL], names.sink, expected, timeoutMs, (m) => String(m.properties.messageId));
}

/** The fault line, from what was published (id -> due) and what the sink saw; every event was confirmed. */
function verdict(due: Map<string, number>, seen: Awaited<ReturnType<typeof readSink>>) {
  const lost = [...due.keys()].filter((id) => !seen.firstSeen.has(id));
  const early = [...seen.firstSeen].filter(([id, at]) => at < (due.get(id) as number));
  const counts = faultCounts(due.size, { confirmed: due.size }, { distinct: seen.firstSeen.size, total: seen.total });
  return { counts: { ...counts, early: early.length }, lost, early };
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
    const { counts, lost, early } = verdict(due, seen);
    report('delay agent killed (SIGKILL) mid-stream', counts);
    expect(lost).toEqual([]);
    expect(early).toEqual([]);
  });

  // AMQP__DELAY_HOLD_MS=0: every delay of a second or more through the ladder; by default, the hold queues.
  it.each([
    ['the delay ladder', { AMQP__DELAY_HOLD_MS: '0' }],
    ['the hold queues', {}],
  ])('loses nothing when the broker restarts with messages pending in %s', async (where, env) => {
    agents.push(await startAgentProcess(names, env));
    const due = await publish(names, 300, (i) => 3_000 + (i % 10) * 300); // pending 3-6 s
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await restartBroker()).toContain('RabbitMQ answers');
    // The agent reconnects on its own.
    const seen = await readSink(names, due.size, 60_000);
    const { counts, lost, early } = verdict(due, seen);
    report(`broker restarted with messages in ${where}`, counts);
    expect(lost).toEqual([]);
    expect(early).toEqual([]);
  });

  it('loses nothing, and sends nothing early, when the agent and the broker restart with 10,000 pending', async () => {
    agents.push(await startAgentProcess(names));
    const due = await publish(names, 10_000, (i) => 12_000 + (i % 100) * 100); // due 12-22 s from now
    // Wait until the agent has taken them all into the ladder.
    const t = delayTopology(names.prefix);
    for (let i = 0; i < 600 && (await broker.depth(t.incoming)) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    await stopProcess(agents[0], 'SIGTERM');
    await restartBroker();
    broker = await TestBroker.reconnect(broker);
    agents.push(await startAgentProcess(names));
    const seen = await readSink(names, due.size, 90_000);
    const { counts, lost, early } = verdict(due, seen);
    report('delay agent and broker restarted with 10,000 pending', counts);
    expect(lost).toEqual([]);
    expect(early).toEqual([]);
  });
});
