import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';

// A channel the broker closed while the connection stayed up is reopened after this.
const REOPEN_DELAY_MS = 1_000;

/** Acknowledges one delivery on the channel it came from; a no-op once that channel is gone. */
export interface Delivery {
  ack(): void;
  /** Puts the message back on its queue (another consumer, or this one later, gets it). */
  requeue(): void;
}

export interface AgentChannelOptions {
  prefetch: number;
  /** Declares the topology; runs on every new channel, before consuming. */
  setup(channel: Channel): Promise<void>;
  consumers: { queue: string; onMessage(message: ConsumeMessage, delivery: Delivery): void }[];
  onError(err: unknown): void;
  /** Told when a channel is consuming (the first time: start-up can go on). */
  onReady?(): void;
}

/**
 * A consuming channel of its own on golevelup's managed connection, set up and
 * consuming again after every reconnect. Deliveries are acknowledged on the
 * channel they came from; after a reconnect the broker redelivers what was not.
 */
export class AgentChannel {
  private channel: Channel | undefined;
  private closed = false;
  private reopenTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly manager: AmqpConnectionManager,
    private readonly options: AgentChannelOptions,
  ) {
    manager.on('connect', this.onConnect);
    if (manager.connection) void this.open(manager.connection);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.manager.removeListener('connect', this.onConnect);
    clearTimeout(this.reopenTimer);
    const channel = this.channel;
    this.channel = undefined;
    // Unacknowledged deliveries go back to their queues when the channel closes.
    await channel?.close().catch(() => undefined);
  }

  private readonly onConnect = ({ connection }: { connection: ChannelModel }): void => {
    void this.open(connection);
  };

  private async open(model: ChannelModel): Promise<void> {
    clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    let channel: Channel;
    try {
      channel = await model.createChannel();
    } catch {
      return; // the connection went away; its reconnect opens the next channel
    }
    channel.on('error', (err: unknown) => this.options.onError(err));
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
      if (!this.closed && this.manager.connection === model && this.reopenTimer === undefined) {
        this.reopenTimer = setTimeout(() => {
          this.reopenTimer = undefined;
          if (!this.closed && !this.channel && this.manager.connection === model) void this.open(model);
        }, REOPEN_DELAY_MS);
      }
    });
    try {
      await channel.prefetch(this.options.prefetch);
      await this.options.setup(channel);
      if (this.closed) throw new Error('closed');
      this.channel = channel;
      for (const { queue, onMessage } of this.options.consumers) {
        await channel.consume(queue, (message) => {
          if (message) onMessage(message, this.delivery(channel, message));
        });
      }
    } catch (err) {
      if (!this.closed) this.options.onError(err);
      await channel.close().catch(() => undefined);
      return;
    }
    this.options.onReady?.();
  }

  private delivery(channel: Channel, message: ConsumeMessage): Delivery {
    // A delivery tag means something only on its own channel: acknowledging it on
    // a newer one would close that channel. A redelivery replaces it.
    const current = () => this.channel === channel;
    return {
      ack: () => current() && channel.ack(message),
      requeue: () => current() && channel.nack(message, false, true),
    };
  }
}
