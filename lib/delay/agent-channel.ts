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
        const open = { now: true };
        channel.once('close', () => (open.now = false));
        await options.setup(channel);
        const tags: string[] = [];
        for (const { queue, prefetch, onMessage } of options.consumers) {
          // basic.qos without global applies to the consumers started after it.
          await channel.prefetch(prefetch);
          const { consumerTag } = await channel.consume(queue, (message) => {
            if (message) onMessage(message, delivery(channel, open, message));
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

/**
 * A delivery tag means something only on its own channel, and only while that
 * channel is open: once it closed, the broker redelivers the message anyway.
 * Keeps the tag only, not the message: a held delivery must not keep its body
 * and properties alive twice.
 */
function delivery(channel: Channel, open: { now: boolean }, message: ConsumeMessage): Delivery {
  const tagged = { fields: { deliveryTag: message.fields.deliveryTag } } as Message;
  const settle = (fn: () => void) => {
    if (!open.now) return;
    try {
      fn();
    } catch {
      // closed in the meantime: the redelivery replaces this one
    }
  };
  return {
    get open() {
      return open.now;
    },
    ack: () => settle(() => channel.ack(tagged)),
    requeue: () => settle(() => channel.nack(tagged, false, true)),
  };
}
