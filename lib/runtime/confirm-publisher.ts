import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { ConfirmChannel, Options } from 'amqplib';
import { confirmsHeld, withdrawConfirm } from './amqp-internals';
import { ChannelKeeper } from './channel-keeper';
import { withoutInstrumentation } from '../telemetry/otel';
import { MoPublishFailure } from '../errors/mo-publish.error';

/** Why the publisher gave a message up, with the broker's own error when there was one. */
export class PublishFailure extends Error {
  constructor(
    readonly reason: MoPublishFailure,
    override readonly cause?: unknown,
  ) {
    super(reason);
  }

  /** The message itself cannot be encoded (a name or property too long, a wrong type): no retry will send it. */
  get unsendable(): boolean {
    return this.cause instanceof TypeError || this.cause instanceof RangeError;
  }
}

interface Pending {
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  readonly options: Options.Publish;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (err: PublishFailure) => void;
  /** queued: waits to be written; sent: written, waits for its confirm; done: settled. */
  state: 'queued' | 'sent' | 'done';
  /** The channel it was written on; a confirm from an older channel is ignored. */
  channel?: ConfirmChannel;
}

export interface ConfirmPublisherOptions {
  /** Declares what publishing needs (the exchange); runs on every new channel. */
  setup: (channel: ConfirmChannel) => Promise<unknown>;
  /** Declares (or checks) one exchange as the configuration says. */
  declareExchange: (channel: ConfirmChannel, name: string) => Promise<void>;
  timeoutMs: number;
  /** Told about set-up failures and channel errors; start-up turns the first into its error. */
  onError: (err: unknown) => void;
  /** Told each time a channel is open and set up (after every reconnect). */
  onOpen?: () => void;
}

/**
 * The one publish path: a confirm channel of its own on golevelup's managed
 * connection. Messages wait in memory (in order) while there is no channel and
 * are re-sent after a reconnect (so duplicates are possible); each is settled
 * by its confirm, a nack, or its deadline. One timer serves all deadlines:
 * every message gets the same timeout, so the oldest is always due first.
 */
export class ConfirmPublisher {
  private readonly keeper: ChannelKeeper<ConfirmChannel>;
  private writable = true;
  private closed = false;
  /** Every unsettled message, in publish order. */
  private readonly pending = new Set<Pending>();
  /** Messages to write, in order; `head` skips the written ones without shifting. */
  private queue: Pending[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private readyWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];

  constructor(manager: AmqpConnectionManager, options: ConfirmPublisherOptions) {
    this.timeoutMs = options.timeoutMs;
    this.declareExchange = options.declareExchange;
    this.keeper = new ChannelKeeper(manager, {
      create: (model) => model.createConfirmChannel(),
      prepare: async (channel) => {
        channel.on('drain', () => {
          if (channel !== this.keeper.channel) return;
          this.writable = true;
          this.flush();
        });
        await options.setup(channel);
      },
      opened: () => {
        this.writable = true;
        for (const wake of this.readyWaiters.splice(0)) wake();
        this.flush();
        options.onOpen?.();
      },
      lost: () => this.requeueUnsettled(),
      error: options.onError,
    });
  }

  private readonly timeoutMs: number;
  private readonly declareExchange: ConfirmPublisherOptions['declareExchange'];

  private get channel(): ConfirmChannel | undefined {
    return this.keeper.channel;
  }

  /** Declares an exchange on the open channel (the spool may hold events for one the broker lost). */
  async assertExchange(name: string): Promise<void> {
    const channel = this.channel;
    if (!channel) throw new PublishFailure('closed');
    await this.declareExchange(channel, name);
  }

  /** True while a channel is open and set up. */
  get ready(): boolean {
    return this.channel !== undefined;
  }

  /** Messages not yet settled. */
  get size(): number {
    return this.pending.size;
  }

  /** Resolves once a channel is open and set up. */
  whenReady(): Promise<void> {
    return this.channel ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Resolves once no message is waiting for its confirm (or deadline). */
  whenIdle(): Promise<void> {
    return this.pending.size === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  publish(exchange: string, routingKey: string, content: Buffer, options: Options.Publish): Promise<void> {
    if (this.closed) return Promise.reject(new PublishFailure('closed'));
    return new Promise<void>((resolve, reject) => {
      const message: Pending = {
        exchange,
        routingKey,
        content,
        options,
        deadline: Date.now() + this.timeoutMs,
        resolve,
        reject,
        state: 'queued',
      };
      this.pending.add(message);
      if (this.timer === undefined) this.armTimer(message.deadline);
      if (this.channel && this.writable && this.head === this.queue.length) this.write(message);
      else this.queue.push(message);
    });
  }

  /** Gives up every unsettled message (`closed`) and closes the channel. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const message of this.pending) this.settle(message, new PublishFailure('closed'));
    await this.keeper.close();
  }

  /**
   * amqplib failed the closed channel's unconfirmed messages ('channel closed'):
   * write everything unsettled again, in the original order, on the next channel.
   */
  private requeueUnsettled(): void {
    this.queue = [];
    this.head = 0;
    for (const message of this.pending) {
      message.state = 'queued';
      message.channel = undefined;
      this.queue.push(message);
    }
  }

  private flush(): void {
    while (this.channel && this.writable && this.head < this.queue.length) {
      const message = this.queue[this.head++];
      if (message.state === 'queued') this.write(message);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
  }

  private write(message: Pending): void {
    const channel = this.channel as ConfirmChannel;
    message.state = 'sent';
    message.channel = channel;
    const confirmed = (err: unknown) => this.onConfirm(message, channel, err);
    const held = confirmsHeld(channel);
    try {
      // Sent with the headers it was given: an OpenTelemetry amqplib instrumentation adds no span of its own.
      withoutInstrumentation(() => {
        this.writable = channel.publish(
          message.exchange,
          message.routingKey,
          message.content,
          message.options,
          confirmed,
        );
      });
    } catch (err) {
      if (err instanceof TypeError || err instanceof RangeError) {
        // amqplib could not encode it: the message's fault, not the channel's. The broker never saw it.
        withdrawConfirm(channel, held);
        this.settle(message, new PublishFailure('rejected', err));
        return;
      }
      // The channel is closing; its 'close' puts the message back in the queue.
      message.state = 'queued';
      message.channel = undefined;
    }
  }

  private onConfirm(message: Pending, channel: ConfirmChannel, err: unknown): void {
    // Late confirms (after a timeout) and failures of a closed channel are not final.
    if (message.state !== 'sent' || message.channel !== channel) return;
    if (!err) this.settle(message);
    else if (err instanceof Error && err.message === 'channel closed') return;
    else this.settle(message, new PublishFailure('rejected', err));
  }

  private settle(message: Pending, failure?: PublishFailure): void {
    if (message.state === 'done') return;
    message.state = 'done';
    this.pending.delete(message);
    if (failure) message.reject(failure);
    else message.resolve();
    if (this.pending.size === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  private armTimer(deadline: number): void {
    this.timer = setTimeout(this.expire, Math.max(0, deadline - Date.now()));
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    const now = Date.now();
    for (const message of this.pending) {
      if (message.deadline > now) {
        this.armTimer(message.deadline);
        break;
      }
      this.settle(message, new PublishFailure('timeout'));
    }
    // While no channel drains the queue, drop what expired from it, so an outage
    // holds at most the unsettled messages in memory.
    if (this.queue.length - this.head > this.pending.size) {
      this.queue = this.queue.slice(this.head).filter((message) => message.state === 'queued');
      this.head = 0;
    }
  };
}
