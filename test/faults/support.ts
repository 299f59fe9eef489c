import * as amqp from 'amqplib';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const ROOT = join(__dirname, '..', '..');
const run = promisify(execFile);

export const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** What every fault case prints, and asserts `lost` is 0 on. */
export interface FaultCounts {
  sent: number;
  confirmed: number;
  spooled: number;
  delivered: number;
  duplicates: number;
  lost: number;
}

/** The counts of `sent` events: what the publisher said of them, and what a reader saw (distinct and in all). */
export function faultCounts(
  sent: number,
  said: { confirmed?: number; spooled?: number },
  seen: { distinct: number; total: number },
): FaultCounts {
  return {
    sent,
    confirmed: said.confirmed ?? 0,
    spooled: said.spooled ?? 0,
    delivered: seen.distinct,
    duplicates: seen.total - seen.distinct,
    lost: sent - seen.distinct,
  };
}

/**
 * `early`: delivered before due (delay agent); `damaged`: destroyed on purpose by the
 * test (spool records); `refused`: publishes that rejected (neither confirmed nor spooled),
 * or with the outbox, changes whose transaction failed; `outboxed`: changes the app saw
 * commit with their event row; `rolledBack`: transactions rolled back on purpose, whose
 * events must never arrive; `phantom`: events that arrived without their change committed.
 */
export function report(
  name: string,
  counts: FaultCounts & {
    early?: number;
    damaged?: number;
    refused?: number;
    outboxed?: number;
    rolledBack?: number;
    phantom?: number;
  },
): void {
  const line = Object.entries(counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  process.stdout.write(`fault: ${name}: ${line}\n`);
}

/** Stops and starts the local broker (scripts/rabbitmq.sh restart); resolves with what the script said. */
export async function restartBroker(): Promise<string> {
  const { stderr } = await run('bash', [join(ROOT, 'scripts', 'rabbitmq.sh'), 'restart'], { timeout: 180_000 });
  return stderr;
}

export async function stopBroker(): Promise<void> {
  await run('bash', [join(ROOT, 'scripts', 'rabbitmq.sh'), 'stop'], { timeout: 180_000 });
}

export async function startBroker(): Promise<void> {
  await run('bash', [join(ROOT, 'scripts', 'rabbitmq.sh'), 'start'], { timeout: 180_000 });
}

export async function cluster(...args: string[]): Promise<string> {
  const { stdout } = await run('bash', [join(ROOT, 'scripts', 'rabbitmq-cluster.sh'), ...args], { timeout: 180_000 });
  return stdout.trim();
}

/**
 * Reads a durable queue until `expected` distinct messages arrived (or the time is
 * up), reconnecting through broker restarts and node failures: id -> copies seen,
 * and when each first arrived. The id is the body's uuid unless `idOf` says else.
 * What arrives while it reconnects waits in the queue and is stamped late, never early.
 */
export async function drainQueue(
  urls: string[],
  queue: string,
  expected: number,
  timeoutMs: number,
  idOf: (m: amqp.ConsumeMessage) => string = (m) => String(JSON.parse(m.content.toString()).uuid),
): Promise<{ copies: Map<string, number>; firstSeen: Map<string, number>; total: number }> {
  const copies = new Map<string, number>();
  const firstSeen = new Map<string, number>();
  let total = 0;
  const deadline = Date.now() + timeoutMs;
  let attempt = 0;
  while (copies.size < expected && Date.now() < deadline) {
    const url = urls[attempt++ % urls.length];
    try {
      const connection = await amqp.connect(url);
      const closed = new Promise((resolve) => {
        connection.on('close', resolve);
        connection.on('error', resolve);
      });
      const channel = await connection.createChannel();
      await channel.prefetch(500);
      await channel.consume(queue, (m) => {
        if (!m) return;
        const id = idOf(m);
        copies.set(id, (copies.get(id) ?? 0) + 1);
        if (!firstSeen.has(id)) firstSeen.set(id, Date.now());
        total++;
        channel.ack(m);
      });
      while (copies.size < expected && Date.now() < deadline) {
        const ended = await Promise.race([
          closed.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 100)),
        ]);
        if (ended) break;
      }
      await connection.close().catch(() => undefined);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 300)); // the broker or node is restarting
    }
  }
  return { copies, firstSeen, total };
}

/** A fixture process that speaks in lines. */
export class Fixture {
  private readonly lines: string[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static start(file: string, env: Record<string, string>): Fixture {
    return new Fixture(
      spawn(process.execPath, [join(ROOT, 'test', 'fixtures', file)], {
        env: { ...process.env, NO_COLOR: '1', ...env },
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** The first line (since the last call) that starts with `prefix`. */
  async line(prefix: string, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.lines.findIndex((l) => l.startsWith(prefix));
      if (index >= 0) return this.lines.splice(0, index + 1)[index];
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`the fixture ended (${this.child.exitCode ?? this.child.signalCode}) before "${prefix}"`);
      }
      if (Date.now() > deadline) throw new Error(`no "${prefix}" from the fixture within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.on('exit', resolve));
    this.child.kill(signal);
    await exited;
  }
}
