import * as amqp from 'amqplib';
import * as net from 'node:net';
import { HOLD_SLOTS, LEVELS, delayTopology } from '../../lib/delay/delay-ladder';
import { broker } from '../../scripts/brokers';

/** The RabbitMQ version the specs run against (BROKER, scripts/brokers.js; 3.10 when unset). */
export const BROKER = broker();

/**
 * The broker the e2e specs use: with BROKER set, that version's local node; else AMQP__URL, or
 * AMQP__HOST/AMQP__PORT, default localhost:5672 (as scripts/rabbitmq.sh decides).
 */
export const BROKER_URL = process.env.BROKER
  ? BROKER.url
  : process.env.AMQP__URL || `amqp://${process.env.AMQP__HOST || 'localhost'}:${process.env.AMQP__PORT || '5672'}`;

let counter = 0;

/** A name no other test (or test run) uses, so specs can run side by side on one broker. */
export function uniqueName(prefix: string): string {
  return `test.${prefix}.${process.pid}.${Date.now().toString(36)}.${counter++}`;
}

/** Messages arriving on an exclusive queue bound to an exchange. */
export class Collector {
  readonly messages: amqp.ConsumeMessage[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly queue: string) {}

  push(message: amqp.ConsumeMessage): void {
    this.messages.push(message);
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves once `count` messages have arrived; rejects after `timeoutMs` saying how many did. */
  async waitFor(count: number, timeoutMs = 5_000): Promise<amqp.ConsumeMessage[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${count} messages on ${this.queue}, got ${this.messages.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.messages;
  }
}

/** A plain amqplib client, the way a consumer outside this package sees the broker. */
export class TestBroker {
  private readonly exchanges = new Set<string>();
  private readonly queues = new Set<string>();

  private constructor(
    readonly connection: amqp.ChannelModel,
    readonly channel: amqp.Channel,
  ) {}

  static async connect(): Promise<TestBroker> {
    const connection = await amqp.connect(BROKER_URL);
    const channel = await connection.createChannel();
    // A broker restart (fault tests) must not crash the test process.
    connection.on('error', () => undefined);
    channel.on('error', () => undefined);
    return new TestBroker(connection, channel);
  }

  /** A fresh connection that keeps what `old` would clean up (after a broker restart). */
  static async reconnect(old: TestBroker): Promise<TestBroker> {
    await old.connection.close().catch(() => undefined);
    const fresh = await TestBroker.connect();
    old.exchanges.forEach((e) => fresh.exchanges.add(e));
    old.queues.forEach((q) => fresh.queues.add(q));
    return fresh;
  }

  /** Declares `exchange` as the contract says (durable topic, unless told) and collects what `binding` matches. */
  async collect(exchange: string, binding = '#', { durable = true } = {}): Promise<Collector> {
    await this.channel.assertExchange(exchange, 'topic', { durable });
    this.exchanges.add(exchange);
    const { queue } = await this.channel.assertQueue('', { exclusive: true, autoDelete: true });
    await this.channel.bindQueue(queue, exchange, binding);
    const collector = new Collector(queue);
    await this.channel.consume(queue, (message) => message && collector.push(message), { noAck: true });
    return collector;
  }

  /** Remembers an exchange a test made the library declare, so `close()` deletes it. */
  track(exchange: string): void {
    this.exchanges.add(exchange);
  }

  /** Remembers a queue a test made the library declare, so `close()` deletes it. */
  trackQueue(queue: string): void {
    this.queues.add(queue);
  }

  /** Has `close()` delete a delay agent's queues and exchanges. */
  trackDelayAgent(prefix: string): void {
    const t = delayTopology(prefix);
    for (const queue of [t.incoming, t.due, t.deadLetter]) this.queues.add(queue);
    this.exchanges.add(t.entryRouter);
    for (let level = 0; level < LEVELS; level++) {
      this.queues.add(t.waitQueue(level));
      this.exchanges.add(t.router(level));
    }
    for (let slot = 0; slot < HOLD_SLOTS; slot++) this.queues.add(t.holdQueue(slot));
  }

  /** Messages waiting in `queue` now. */
  async depth(queue: string): Promise<number> {
    return (await this.channel.checkQueue(queue)).messageCount;
  }

  /** Takes every message waiting on `queue` (acknowledged, so it is gone). */
  async drain(queue: string): Promise<amqp.GetMessage[]> {
    const messages: amqp.GetMessage[] = [];
    for (
      let m = await this.channel.get(queue, { noAck: true });
      m;
      m = await this.channel.get(queue, { noAck: true })
    ) {
      messages.push(m);
    }
    return messages;
  }

  /**
   * Takes the next message of `queue` on a channel of its own and closes that
   * channel with the message unacknowledged, as a consumer dying on it does,
   * until the broker moves it to `deadLetterQueue` (or `most` deliveries): how
   * many times it was handed out. A channel's end counts towards a quorum
   * queue's delivery limit on every version; a `nack` with requeue no longer
   * does from RabbitMQ 4.3.
   */
  async returnUntilDeadLettered(queue: string, deadLetterQueue: string, most = 50): Promise<number> {
    let handedOut = 0;
    const deadline = Date.now() + 10_000;
    while (handedOut < most && Date.now() < deadline) {
      const dying = await this.connection.createChannel();
      const m = await dying.get(queue);
      await dying.close();
      if (!m) {
        if ((await this.depth(deadLetterQueue)) > 0) return handedOut;
        await new Promise((resolve) => setTimeout(resolve, 20)); // the return is on its way
        continue;
      }
      handedOut++;
    }
    return handedOut;
  }

  /** Deletes the exchanges and queues this test used; exclusive queues go with the connection. */
  async close(): Promise<void> {
    for (const queue of this.queues) {
      await this.channel.deleteQueue(queue);
      // A consumer's queue comes with its .dlq and .retry: tracking the .dlq covers the .retry too.
      if (queue.endsWith('.dlq')) await this.channel.deleteQueue(`${queue.slice(0, -'.dlq'.length)}.retry`);
    }
    for (const exchange of this.exchanges) await this.channel.deleteExchange(exchange);
    await this.connection.close();
  }
}

/** A loopback port with nothing listening on it: connecting there is refused. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A TCP proxy on loopback in front of the broker. `pause()` stops all traffic
 * without closing anything: to the client, the broker has stopped answering.
 * It also counts connections, so a test can prove none was made.
 */
export class TcpProxy {
  connections = 0;
  private paused = false;
  private blocked = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;

  private constructor(target: { host: string; port: number } | null) {
    this.server = net.createServer((client) => this.accept(client, target));
  }

  /** Forwards to `target` (default: the test broker); `null` makes a listener that never answers. */
  static async start(target: { host: string; port: number } | null = brokerAddress()): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  pause(): void {
    this.paused = true;
    for (const socket of this.sockets) socket.pause();
  }

  resume(): void {
    this.paused = false;
    for (const socket of this.sockets) socket.resume();
  }

  /** Cuts every connection and refuses new ones: to the client, the broker is down. */
  block(): void {
    this.blocked = true;
    this.dropConnections();
  }

  /** The broker is back: connections go through again. */
  unblock(): void {
    this.blocked = false;
  }

  /** Sockets open through the proxy now (client and broker side). */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** Cuts every connection through the proxy, as a broker restart or network fault would. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket, target: { host: string; port: number } | null): void {
    if (this.blocked) {
      client.destroy();
      return;
    }
    this.connections++;
    this.track(client);
    if (!target) return;
    const upstream = net.connect(target.port, target.host);
    this.track(upstream);
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    if (this.paused) {
      client.pause();
      upstream.pause();
    }
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  }
}

function brokerAddress(): { host: string; port: number } {
  const url = new URL(BROKER_URL);
  return { host: url.hostname.replace(/^\[|\]$/g, '') || 'localhost', port: Number(url.port || 5672) };
}
