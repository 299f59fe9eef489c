import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { Channel, ConsumeMessage, Message } from 'amqplib';
import { ChannelKeeper } from '../runtime/channel-keeper';
import { BROKER_ANSWER_WAIT_MS, settlesWithin } from '../util/settles-within';

/** Acknowledges one delivery on the channel it came from; a no-op once that channel is gone. */
export interface Delivery {
  /** False once its channel has closed: the broker then delivers the message again. */
  readonly open: boolean;
  ack(): void;
  /** Puts the message back on its queue (another consumer, or this one later, gets it). */
  requeue(): void;
  /** Rejects it without requeue: to its queue's dead-letter exchange where it has one, else gone. */
  reject(): void;
}

export interface AgentChannelOptions {
  /** Declares the topology; runs on every new channel, before consuming. */
  setup(channel: Channel): Promise<void>;
  /** Each consumer's own prefetch: unacknowledged deliveries it may hold at once. */
  consumers: { queue: string; prefetch: number; onMessage(message: ConsumeMessage, delivery: Delivery): void }[];
  onError(err: unknown): void;
  /** Told when a channel is consuming (the first time: start-up can go on). */
  onReady?(): void;
  /** Told when the channel in use has closed: its deliveries' `open` is false by then. */
  onLost?(): void;
}

/**
 * The delay agent's consuming channel, set up and consuming again after every
 * reconnect. Deliveries are acknowledged on the channel they came from; after a
 * reconnect the broker redelivers what was not.
 */
export class AgentChannel {
  private readonly keeper: ChannelKeeper<Channel>;
  private consumerTags: string[] = [];

  constructor(manager: AmqpConnectionManager, options: AgentChannelOptions) {
    this.keeper = new ChannelKeeper(manager, {
      create: (model) => model.createChannel(),
      prepare: async (channel) => {
        const state: ChannelState = { channel, now: true };
        channel.once('close', () => (state.now = false));
        await options.setup(channel);
        const tags: string[] = [];
        for (const { queue, prefetch, onMessage } of options.consumers) {
          // basic.qos without global applies to the consumers started after it.
          await channel.prefetch(prefetch);
          const { consumerTag } = await channel.consume(queue, (message) => {
            if (message) onMessage(message, new TaggedDelivery(state, message.fields.deliveryTag));
          });
          tags.push(consumerTag);
        }
        this.consumerTags = tags;
      },
      opened: () => options.onReady?.(),
      // Unacknowledged deliveries went back to their queues. Told after every 'close'
      // listener has run, so the deliveries know their channel is gone.
      lost: () => setImmediate(() => options.onLost?.()),
      error: options.onError,
    });
  }

  /**
   * Takes no new deliveries; the ones in hand can still be acknowledged. Bounded:
   * a broker that stopped answering never sends cancel-ok.
   */
  async stopConsuming(): Promise<void> {
    const channel = this.keeper.channel;
    const tags = this.consumerTags;
    this.consumerTags = [];
    await settlesWithin(Promise.allSettled(tags.map((tag) => channel?.cancel(tag))), BROKER_ANSWER_WAIT_MS);
  }

  async close(): Promise<void> {
    // Unacknowledged deliveries go back to their queues when the channel closes.
    await this.keeper.close();
  }
}

/** One channel's state, shared by its deliveries. */
interface ChannelState {
  readonly channel: Channel;
  now: boolean;
}

/**
 * A delivery tag means something only on its own channel, and only while that
 * channel is open: once it closed, the broker redelivers the message anyway.
 * Keeps the tag and its channel's shared state only, not the message: the agent
 * may hold tens of thousands of these.
 */
class TaggedDelivery implements Delivery {
  constructor(
    private readonly state: ChannelState,
    private readonly deliveryTag: number,
  ) {}

  get open(): boolean {
    return this.state.now;
  }

  ack(): void {
    this.settle((channel, message) => channel.ack(message));
  }

  requeue(): void {
    this.settle((channel, message) => channel.nack(message, false, true));
  }

  reject(): void {
    this.settle((channel, message) => channel.nack(message, false, false));
  }

  private settle(fn: (channel: Channel, message: Message) => void): void {
    if (!this.state.now) return;
    try {
      // amqplib reads the tag only.
      fn(this.state.channel, { fields: { deliveryTag: this.deliveryTag } } as Message);
    } catch {
      // closed in the meantime: the redelivery replaces this one
    }
  }
}
