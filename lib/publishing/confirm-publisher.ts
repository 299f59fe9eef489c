import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { MoPublishFailure } from '../errors/mo-publish.error';

// How long to wait before reopening a channel the broker closed while the
// connection stayed up (an exchange deleted under us, say); doubles while the
// set-up keeps failing.
const REOPEN_DELAY_MS = 1_000;
const MAX_REOPEN_DELAY_MS = 30_000;

/** Why the publisher gave a message up, with the broker's own error when there was one. */
export class PublishFailure extends Error {
  constructor(
    readonly reason: MoPublishFailure,
    override readonly cause?: unknown,
  ) {
    super(reason);
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
  timeoutMs: number;
  /** Told about set-up failures and channel errors; start-up turns the first into its error. */
  onError: (err: unknown) => void;
}

/**
 * The one publish path: a confirm channel of its own on golevelup's managed
 * connection. Messages wait in memory (in order) while there is no channel and
 * are re-sent after a reconnect (so duplicates are possible); each is settled
 * by its confirm, a nack, or its deadline. One timer serves all deadlines:
 * every message gets the same timeout, so the oldest is always due first.
 */
export class ConfirmPublisher {
  private channel: ConfirmChannel | undefined;
  private model: ChannelModel | undefined;
  private writable = true;
  private closed = false;
  /** Every unsettled message, in publish order. */
  private readonly pending = new Set<Pending>();
  /** Messages to write, in order; `head` skips the written ones without shifting. */
  private queue: Pending[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private reopenTimer: NodeJS.Timeout | undefined;
  private reopenDelay = REOPEN_DELAY_MS;
  private readyWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly manager: AmqpConnectionManager,
    private readonly options: ConfirmPublisherOptions,
  ) {
    manager.on('connect', this.onConnect);
    if (manager.connection) void this.open(manager.connection);
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
        deadline: Date.now() + this.options.timeoutMs,
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
    this.manager.removeListener('connect', this.onConnect);
    clearTimeout(this.reopenTimer);
    for (const message of this.pending) this.settle(message, new PublishFailure('closed'));
    const channel = this.channel;
    this.channel = undefined;
    await channel?.close().catch(() => undefined);
  }

  private readonly onConnect = ({ connection }: { connection: ChannelModel }): void => {
    void this.open(connection);
  };

  private async open(model: ChannelModel): Promise<void> {
    clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    let channel: ConfirmChannel;
    try {
      channel = await model.createConfirmChannel();
    } catch {
      return; // the connection went away meanwhile; its reconnect opens the next channel
    }
    // Without a listener a channel error would be raised on the whole connection.
    channel.on('error', (err: unknown) => this.options.onError(err));
    channel.on('close', () => this.onChannelClosed(channel, model));
    channel.on('drain', () => {
      if (channel !== this.channel) return;
      this.writable = true;
      this.flush();
    });
    try {
      await this.options.setup(channel);
    } catch (err) {
      this.options.onError(err);
      this.reopenDelay = Math.min(this.reopenDelay * 2, MAX_REOPEN_DELAY_MS);
      return; // a failed declaration closes the channel: onChannelClosed retries
    }
    this.reopenDelay = REOPEN_DELAY_MS;
    if (this.closed) {
      await channel.close().catch(() => undefined);
      return;
    }
    this.channel = channel;
    this.model = model;
    this.writable = true;
    for (const wake of this.readyWaiters.splice(0)) wake();
    this.flush();
  }

  private onChannelClosed(channel: ConfirmChannel, model: ChannelModel): void {
    if (this.channel === channel) this.channel = undefined;
    if (this.closed) return;
    // amqplib failed this channel's unconfirmed messages ('channel closed'); write
    // everything unsettled again, in the original order, on the next channel.
    this.queue = [];
    this.head = 0;
    for (const message of this.pending) {
      message.state = 'queued';
      message.channel = undefined;
      this.queue.push(message);
    }
    // The broker closed only the channel: open another on the same connection.
    // (When the connection went, the manager's next 'connect' opens one.)
    if (this.manager.connection === model && this.reopenTimer === undefined) {
      this.reopenTimer = setTimeout(() => {
        this.reopenTimer = undefined;
        if (!this.closed && !this.channel && this.manager.connection === model) void this.open(model);
      }, this.reopenDelay);
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
    try {
      this.writable = channel.publish(
        message.exchange,
        message.routingKey,
        message.content,
        message.options,
        (err: unknown) => this.onConfirm(message, channel, err),
      );
    } catch {
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
