import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Message, Options } from 'amqplib';
import { EventEmitter } from 'node:events';
import { setImmediate as realSetImmediate } from 'node:timers';

/**
 * A small in-memory RabbitMQ for unit tests, in the spirit of
 * amqp-connection-manager's FakeAmqp: queues, amqplib-like channels (consume,
 * prefetch, cancel, ack/nack with `multiple`, publish with confirm callbacks,
 * close) and a connection manager, recording what happened. It keeps the rules
 * a consumer relies on: delivery tags count from 1 per channel, basic.qos
 * applies to the consumers started after it, an ack of a tag that is not
 * outstanding closes the channel (PRECONDITION_FAILED), and what a closed
 * channel had not acknowledged goes back to its queue, redelivered. Exchanges
 * other than the default one only record what is published to them (or route to
 * queues bound with their exact routing key or `#`). No timers: works under Jest's
 * fake timers.
 */

/** A message in a queue. */
interface Stored {
  readonly seq: number;
  readonly content: Buffer;
  readonly properties: ConsumeMessage['properties'];
  readonly exchange: string;
  readonly routingKey: string;
  redelivered: boolean;
  deliveries: number;
}

interface Consumer {
  readonly tag: string;
  readonly queue: string;
  readonly channel: FakeChannel;
  /** basic.qos of its channel when it started; 0: no limit. */
  readonly prefetch: number;
  readonly onMessage: (message: ConsumeMessage | null) => void;
  outstanding: number;
}

export type FakeEvent =
  | { op: 'consume'; channel: number; queue: string; consumerTag: string; prefetch: number }
  | { op: 'cancel'; channel: number; consumerTag: string }
  | { op: 'prefetch'; channel: number; count: number }
  | { op: 'deliver'; channel: number; queue: string; consumerTag: string; deliveryTag: number; messageId?: string }
  | { op: 'ack'; channel: number; deliveryTag: number; multiple: boolean }
  | { op: 'nack'; channel: number; deliveryTag: number; multiple: boolean; requeue: boolean }
  | { op: 'close'; channel: number; by: 'client' | 'broker'; reason?: string };

export interface Published {
  readonly channel: number;
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  readonly options: Options.Publish;
}

/** Waits until every promise continuation and delivery now possible has run (a real macrotask). */
export const flush = (): Promise<void> => new Promise((resolve) => realSetImmediate(resolve));

/** Deliveries of one message after which the broker takes it for a requeue loop and drops it. */
const MAX_DELIVERIES = 100;

const PUBLISH_KEYS = [
  'contentType',
  'contentEncoding',
  'headers',
  'deliveryMode',
  'priority',
  'correlationId',
  'replyTo',
  'expiration',
  'messageId',
  'timestamp',
  'type',
  'userId',
  'appId',
  'clusterId',
] as const;

/** The properties a consumer sees for a message published with `options` (every key present, as amqplib's). */
export function propertiesOf(options: Options.Publish = {}): ConsumeMessage['properties'] {
  const properties = Object.fromEntries(PUBLISH_KEYS.map((key) => [key, options[key as keyof Options.Publish]]));
  if (options.persistent && properties.deliveryMode === undefined) properties.deliveryMode = 2;
  if (properties.expiration !== undefined) properties.expiration = String(properties.expiration);
  return properties as ConsumeMessage['properties'];
}

export class FakeBroker {
  readonly events: FakeEvent[] = [];
  /** Everything published, on any channel, in order. */
  readonly published: Published[] = [];
  /** Channel errors the broker raised (each closed its channel). */
  readonly errors: string[] = [];
  readonly manager = new FakeManager();
  /** Refuses queue.unbind with 403, as topic permissions can. */
  refuseUnbind = false;
  readonly channels: FakeChannel[] = [];
  readonly serverProperties = { version: '3.10.8', product: 'RabbitMQ' };
  /** How new channels confirm: at once, or when the test says (see `FakeChannel.confirms`). */
  confirms: 'auto' | 'manual' = 'auto';
  /** Told of each channel as it is created (to hold its answers, say). */
  onChannel: (channel: FakeChannel) => void = () => undefined;
  private readonly queues = new Map<string, { ready: Stored[]; consumers: Consumer[] }>();
  private readonly exchanges = new Map<string, string>();
  private readonly bindings: { queue: string; exchange: string; pattern: string }[] = [];
  private seq = 0;
  private scheduled = new Set<string>();

  /** A connection to this broker, made the manager's current one (and announced, as a reconnect). */
  connect(): FakeConnection {
    const connection = new FakeConnection(this);
    this.manager.connection = connection;
    this.manager.emit('connect', { connection });
    return connection;
  }

  declareQueue(name: string): void {
    if (!this.queues.has(name)) this.queues.set(name, { ready: [], consumers: [] });
  }

  hasQueue(name: string): boolean {
    return this.queues.has(name);
  }

  declareExchange(name: string, type: string): void {
    this.exchanges.set(name, type);
  }

  bind(queue: string, exchange: string, pattern: string): void {
    if (!this.bindings.some((b) => b.queue === queue && b.exchange === exchange && b.pattern === pattern)) {
      this.bindings.push({ queue, exchange, pattern });
    }
  }

  /** Idempotent, as RabbitMQ's queue.unbind is. */
  unbind(queue: string, exchange: string, pattern: string): void {
    const at = this.bindings.findIndex((b) => b.queue === queue && b.exchange === exchange && b.pattern === pattern);
    if (at >= 0) this.bindings.splice(at, 1);
  }

  /** The patterns `queue` is bound with on `exchange`. */
  bindingsOf(queue: string, exchange: string): string[] {
    return this.bindings.filter((b) => b.queue === queue && b.exchange === exchange).map((b) => b.pattern);
  }

  /** Puts a message in a queue, as a publisher would. */
  enqueue(
    queue: string,
    content: Buffer | string,
    options: Options.Publish = {},
    from: { exchange?: string; routingKey?: string } = {},
  ): void {
    const q = this.queue(queue);
    q.ready.push({
      seq: ++this.seq,
      content: Buffer.from(content),
      properties: propertiesOf(options),
      exchange: from.exchange ?? '',
      routingKey: from.routingKey ?? queue,
      redelivered: false,
      deliveries: 0,
    });
    this.schedule(queue);
  }

  /** Empties a queue of its ready messages; returns how many there were. */
  purge(queue: string): number {
    return this.queue(queue).ready.splice(0).length;
  }

  /** The messages ready (not delivered) in a queue, oldest first. */
  ready(queue: string): { content: string; properties: ConsumeMessage['properties']; redelivered: boolean }[] {
    return this.queue(queue).ready.map((m) => ({
      content: m.content.toString(),
      properties: m.properties,
      redelivered: m.redelivered,
    }));
  }

  /** The latest consume of a queue: its channel and consumer tag. */
  consumerOf(queue: string): { channel: FakeChannel; consumerTag: string } | undefined {
    const consume = this.of('consume')
      .filter((c) => c.queue === queue)
      .at(-1);
    return consume && { channel: this.channels[consume.channel - 1], consumerTag: consume.consumerTag };
  }

  /** The events of one kind, e.g. `broker.of('ack')`. */
  of<K extends FakeEvent['op']>(op: K, channel?: FakeChannel): Extract<FakeEvent, { op: K }>[] {
    return this.events.filter(
      (e): e is Extract<FakeEvent, { op: K }> => e.op === op && (!channel || e.channel === channel.id),
    );
  }

  /** @internal */ route(
    channel: FakeChannel,
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish,
  ): void {
    this.published.push({ channel: channel.id, exchange, routingKey, content: Buffer.from(content), options });
    const targets =
      exchange === ''
        ? [routingKey]
        : this.exchanges.get(exchange) === 'headers'
          ? []
          : this.bindings
              .filter((b) => b.exchange === exchange && topicMatches(b.pattern, routingKey))
              .map((b) => b.queue);
    for (const queue of targets) {
      if (this.queues.has(queue)) this.enqueue(queue, content, options, { exchange, routingKey });
    }
  }

  /** @internal */ queue(name: string): { ready: Stored[]; consumers: Consumer[] } {
    const q = this.queues.get(name);
    if (!q) throw new Error(`no queue "${name}" in the fake broker`);
    return q;
  }

  /** @internal */ giveBack(queue: string, message: Stored): void {
    const q = this.queue(queue);
    message.redelivered = true;
    // Back in its place: RabbitMQ keeps a requeued message's position.
    const at = q.ready.findIndex((m) => m.seq > message.seq);
    q.ready.splice(at < 0 ? q.ready.length : at, 0, message);
    this.schedule(queue);
  }

  /** @internal Deliveries go out in a later microtask, as frames from the socket would. */
  schedule(queue: string): void {
    if (this.scheduled.has(queue)) return;
    this.scheduled.add(queue);
    void Promise.resolve().then(() => {
      this.scheduled.delete(queue);
      this.dispatch(queue);
    });
  }

  private dispatch(queue: string): void {
    const q = this.queues.get(queue);
    if (!q) return;
    // The broker sends what the consumers have room for; the client then reads the frames in order.
    const sent: { consumer: Consumer; message: ConsumeMessage }[] = [];
    let turn = 0;
    while (q.ready.length > 0) {
      const open = q.consumers.filter((c) => c.prefetch === 0 || c.outstanding < c.prefetch);
      if (open.length === 0) break;
      const consumer = open[turn++ % open.length];
      const stored = q.ready.shift() as Stored;
      if (++stored.deliveries > MAX_DELIVERIES) {
        // A consumer that gives a message back at once gets it back at once: a loop, not a test.
        this.errors.push(`"${stored.content.toString()}" of ${queue} delivered ${MAX_DELIVERIES} times: dropped`);
        continue;
      }
      sent.push({ consumer, message: consumer.channel.delivered(consumer, stored) });
    }
    for (const { consumer, message } of sent) {
      if (!consumer.channel.closed) consumer.onMessage(message);
    }
  }
}

export class FakeManager extends EventEmitter {
  connection: FakeConnection | undefined;

  /** As amqp-connection-manager's, typed for the code under test. */
  get asManager(): AmqpConnectionManager {
    return this as unknown as AmqpConnectionManager;
  }
}

export class FakeConnection {
  /** amqplib's `ChannelModel.connection`: what `brokerVersionOf` reads. */
  readonly connection: { serverProperties: Record<string, string> };
  readonly channels: FakeChannel[] = [];

  constructor(readonly broker: FakeBroker) {
    this.connection = { serverProperties: broker.serverProperties };
  }

  get asModel(): ChannelModel {
    return this as unknown as ChannelModel;
  }

  async createChannel(): Promise<Channel> {
    return this.open(false) as unknown as Channel;
  }

  async createConfirmChannel(): Promise<ConfirmChannel> {
    return this.open(true) as unknown as ConfirmChannel;
  }

  /** The connection drops: every channel closes, and the manager has no connection until `broker.connect()`. */
  drop(): void {
    if (this.broker.manager.connection === this) this.broker.manager.connection = undefined;
    for (const channel of this.channels) channel.serverClose('connection lost');
  }

  private open(confirm: boolean): FakeChannel {
    const channel = new FakeChannel(this.broker, this, this.broker.channels.length + 1, confirm);
    this.channels.push(channel);
    this.broker.channels.push(channel);
    this.broker.onChannel(channel);
    return channel;
  }
}

type Answer = 'consume' | 'cancel' | 'prefetch';

export class FakeChannel extends EventEmitter {
  closed = false;
  /** Confirms of a confirm channel: at once (`auto`), or when the test says (`confirmPublishes`, `failConfirms`). */
  confirms: 'auto' | 'manual';
  /** Publishes the socket buffer takes before `publish` answers false (amqplib's back-pressure; 'drain' follows). */
  roomLeft = Number.POSITIVE_INFINITY;
  /** Publishes waiting for their confirm (manual mode). */
  readonly unconfirmed: { published: Published; cb: (err: unknown) => void }[] = [];
  readonly connection: { serverProperties: Record<string, string> };
  private nextTag = 1;
  private qos = 0;
  private consumerCount = 0;
  private readonly consumers = new Map<string, Consumer>();
  private readonly unacked = new Map<number, { stored: Stored; consumer: Consumer }>();
  private readonly holding = new Set<Answer>();
  private readonly heldAnswers: { op: Answer; settle: (err?: Error) => void }[] = [];

  constructor(
    private readonly broker: FakeBroker,
    readonly model: FakeConnection,
    readonly id: number,
    readonly confirm: boolean,
  ) {
    super();
    this.connection = model.connection;
    this.confirms = broker.confirms;
  }

  get asChannel(): Channel {
    return this as unknown as Channel;
  }

  /** Delivery tags handed out and not yet acknowledged or rejected. */
  get outstanding(): number[] {
    return [...this.unacked.keys()];
  }

  /**
   * The broker's answers to these methods wait for `answer(op)`: a consume takes
   * effect at once (deliveries come before its answer), a cancel only with its
   * answer (deliveries already on their way still come).
   */
  holdAnswers(...ops: Answer[]): void {
    for (const op of ops) this.holding.add(op);
  }

  /** Sends the held answers of `op` and stops holding them. */
  answer(op: Answer): void {
    this.holding.delete(op);
    for (const held of this.heldAnswers.filter((h) => h.op === op)) {
      this.heldAnswers.splice(this.heldAnswers.indexOf(held), 1);
      held.settle();
    }
  }

  async assertQueue(queue: string): Promise<{ queue: string; messageCount: number; consumerCount: number }> {
    this.mustBeOpen();
    this.broker.declareQueue(queue);
    return this.checkQueue(queue);
  }

  async checkQueue(queue: string): Promise<{ queue: string; messageCount: number; consumerCount: number }> {
    this.mustBeOpen();
    if (!this.broker.hasQueue(queue)) throw this.fail(404, `NOT_FOUND - no queue '${queue}' in vhost '/'`);
    const q = this.broker.queue(queue);
    return { queue, messageCount: q.ready.length, consumerCount: q.consumers.length };
  }

  async assertExchange(exchange: string, type: string): Promise<{ exchange: string }> {
    this.mustBeOpen();
    this.broker.declareExchange(exchange, type);
    return { exchange };
  }

  async checkExchange(_exchange: string): Promise<object> {
    this.mustBeOpen();
    return {};
  }

  async bindQueue(queue: string, exchange: string, pattern: string): Promise<object> {
    this.mustBeOpen();
    this.broker.bind(queue, exchange, pattern);
    return {};
  }

  async unbindQueue(queue: string, exchange: string, pattern: string): Promise<object> {
    this.mustBeOpen();
    if (this.broker.refuseUnbind) {
      throw this.fail(403, `ACCESS_REFUSED - read access to topic '${pattern}' in exchange '${exchange}' refused`);
    }
    this.broker.unbind(queue, exchange, pattern);
    return {};
  }

  async prefetch(count: number): Promise<object> {
    this.mustBeOpen();
    this.qos = count;
    this.broker.events.push({ op: 'prefetch', channel: this.id, count });
    return this.reply('prefetch', {});
  }

  async consume(
    queue: string,
    onMessage: (message: ConsumeMessage | null) => void,
    options: Options.Consume = {},
  ): Promise<{ consumerTag: string }> {
    this.mustBeOpen();
    if (!this.broker.hasQueue(queue)) throw this.fail(404, `NOT_FOUND - no queue '${queue}' in vhost '/'`);
    const tag = options.consumerTag ?? `ctag-${this.id}.${++this.consumerCount}`;
    const consumer: Consumer = { tag, queue, channel: this, prefetch: this.qos, onMessage, outstanding: 0 };
    this.consumers.set(tag, consumer);
    this.broker.queue(queue).consumers.push(consumer);
    this.broker.events.push({ op: 'consume', channel: this.id, queue, consumerTag: tag, prefetch: this.qos });
    // Scheduled before the answer: deliveries can be read before consume-ok is seen.
    this.broker.schedule(queue);
    return this.reply('consume', { consumerTag: tag });
  }

  async cancel(consumerTag: string): Promise<{ consumerTag: string }> {
    this.mustBeOpen();
    this.broker.events.push({ op: 'cancel', channel: this.id, consumerTag });
    if (!this.holding.has('cancel')) this.stop(consumerTag);
    return this.reply('cancel', { consumerTag }, () => this.stop(consumerTag));
  }

  ack(message: Message, allUpTo = false): void {
    this.mustBeOpen();
    const { deliveryTag } = message.fields;
    this.broker.events.push({ op: 'ack', channel: this.id, deliveryTag, multiple: allUpTo });
    for (const tag of this.settling(deliveryTag, allUpTo)) this.settle(tag);
  }

  nack(message: Message, allUpTo = false, requeue = true): void {
    this.mustBeOpen();
    const { deliveryTag } = message.fields;
    this.broker.events.push({ op: 'nack', channel: this.id, deliveryTag, multiple: allUpTo, requeue });
    for (const tag of this.settling(deliveryTag, allUpTo)) {
      const { stored, consumer } = this.settle(tag);
      if (requeue) this.broker.giveBack(consumer.queue, stored);
    }
  }

  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish = {},
    cb?: (err: unknown) => void,
  ): boolean {
    this.mustBeOpen();
    this.broker.route(this, exchange, routingKey, content, options);
    const published = this.broker.published.at(-1) as Published;
    if (this.confirm && cb) {
      if (this.confirms === 'auto') void Promise.resolve().then(() => cb(null));
      else this.unconfirmed.push({ published, cb });
    }
    return --this.roomLeft > 0;
  }

  /** Confirms the first `count` waiting publishes (all by default). */
  confirmPublishes(count = this.unconfirmed.length): void {
    for (const { cb } of this.unconfirmed.splice(0, count)) cb(null);
  }

  /** Nacks the waiting publishes (basic.nack from the broker). */
  failConfirms(err = new Error('message nacked')): void {
    for (const { cb } of this.unconfirmed.splice(0)) cb(err);
  }

  async close(): Promise<void> {
    if (this.closed) throw new Error('Channel closed');
    this.end('client');
  }

  /** The broker closes the channel (a channel error, or the connection went). */
  serverClose(reason = 'CHANNEL_ERROR'): void {
    if (!this.closed) this.end('broker', reason);
  }

  /** @internal */ delivered(consumer: Consumer, stored: Stored): ConsumeMessage {
    const deliveryTag = this.nextTag++;
    consumer.outstanding++;
    this.unacked.set(deliveryTag, { stored, consumer });
    this.broker.events.push({
      op: 'deliver',
      channel: this.id,
      queue: consumer.queue,
      consumerTag: consumer.tag,
      deliveryTag,
      messageId: stored.properties.messageId,
    });
    return {
      content: stored.content,
      fields: {
        deliveryTag,
        redelivered: stored.redelivered,
        exchange: stored.exchange,
        routingKey: stored.routingKey,
        consumerTag: consumer.tag,
      },
      properties: stored.properties,
    };
  }

  private settling(deliveryTag: number, allUpTo: boolean): number[] {
    if (!this.unacked.has(deliveryTag)) {
      this.fail(406, `PRECONDITION_FAILED - unknown delivery tag ${deliveryTag}`);
      return [];
    }
    return allUpTo ? [...this.unacked.keys()].filter((tag) => tag <= deliveryTag) : [deliveryTag];
  }

  private settle(tag: number): { stored: Stored; consumer: Consumer } {
    const entry = this.unacked.get(tag) as { stored: Stored; consumer: Consumer };
    this.unacked.delete(tag);
    entry.consumer.outstanding--;
    this.broker.schedule(entry.consumer.queue);
    return entry;
  }

  private stop(consumerTag: string): void {
    const consumer = this.consumers.get(consumerTag);
    if (!consumer) return;
    this.consumers.delete(consumerTag);
    const q = this.broker.queue(consumer.queue);
    q.consumers.splice(q.consumers.indexOf(consumer), 1);
  }

  /** A channel error: the broker closes the channel, in a later microtask (amqplib: 'error', then 'close'). */
  private fail(code: number, text: string): Error {
    const err = Object.assign(new Error(`Channel closed by server: ${code} (${text})`), { code });
    this.broker.errors.push(text);
    void Promise.resolve().then(() => {
      if (this.closed) return;
      if (this.listenerCount('error') > 0) this.emit('error', err);
      this.end('broker', text);
    });
    return err;
  }

  private end(by: 'client' | 'broker', reason?: string): void {
    this.closed = true;
    this.broker.events.push({ op: 'close', channel: this.id, by, ...(reason !== undefined && { reason }) });
    for (const tag of [...this.consumers.keys()]) this.stop(tag);
    // What it had not acknowledged goes back, in its place.
    for (const [tag, { stored, consumer }] of [...this.unacked]) {
      this.unacked.delete(tag);
      this.broker.giveBack(consumer.queue, stored);
    }
    for (const { cb } of this.unconfirmed.splice(0)) cb(new Error('channel closed'));
    for (const held of this.heldAnswers.splice(0)) held.settle(new Error('Channel closed'));
    this.emit('close');
  }

  /** The answer, now or once `answer(op)` sends it (`effect` then runs first). */
  private reply<T>(op: Answer, value: T, effect: () => void = () => undefined): Promise<T> {
    if (!this.holding.has(op)) return Promise.resolve(value);
    return new Promise<T>((resolve, reject) =>
      this.heldAnswers.push({
        op,
        settle: (err) => {
          if (err) return reject(err);
          effect();
          resolve(value);
        },
      }),
    );
  }

  private mustBeOpen(): void {
    if (this.closed) throw new Error('Channel closed');
  }
}

/** A topic exchange's match: `*` one word, `#` any number of words. */
export function topicMatches(pattern: string, routingKey: string): boolean {
  const match = (p: string[], k: string[]): boolean => {
    if (p.length === 0) return k.length === 0;
    const [head, ...rest] = p;
    if (head === '#') return k.some((_, i) => match(rest, k.slice(i))) || match(rest, []);
    return k.length > 0 && (head === '*' || head === k[0]) && match(rest, k.slice(1));
  };
  return match(pattern.split('.'), routingKey.split('.'));
}
