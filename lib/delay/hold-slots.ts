import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { Channel, ConsumeMessage, Message } from 'amqplib';
import { ChannelKeeper } from '../runtime/channel-keeper';
import { BROKER_ANSWER_WAIT_MS, settlesWithin } from '../util/settles-within';
import type { Delivery } from './agent-channel';
import { DUE_HEADER, DelayTopology, HOLD_SLOTS } from './delay-ladder';

// A slot's queue is consumed from this long before its second until this long after it.
const LEAD_MS = 1_500;
const GRACE_MS = 2_000;
// How often the slots to consume are worked out.
const TICK_MS = 250;
// A sweep hands back the first messages of the queue's next second it gets: few, so few go back.
const SWEEP_PREFETCH = 20;

export interface HoldSlotsOptions {
  topology: DelayTopology;
  /** Deliveries each slot's consumer may hold: at least the messages due in one second. */
  prefetch: number;
  onMessage(message: ConsumeMessage, delivery: Delivery): void;
  onError(err: unknown): void;
}

/**
 * Consumes the hold queue of each second from just before it until just after
 * it, on a channel of its own. Everything in that queue is due within that
 * second, so what the agent holds in memory is about one second of messages.
 *
 * Acknowledgements go out in delivery order, several at once (`multiple`),
 * whatever order the messages fall due in: RabbitMQ walks its list of
 * unacknowledged messages from the oldest for each acknowledgement, so acking
 * out of order costs it time in proportion to how many are held.
 *
 * At start, and on every new channel, each queue is swept once for messages
 * that fell due while no agent consumed it (it stopped, or the broker was
 * down): those are taken at once instead of a round (64 s) later; the first
 * message of the queue's next second ends its sweep.
 */
export class HoldSlots {
  private readonly keeper: ChannelKeeper<Channel>;
  /** The consumer of each slot being consumed (or on its way to be). */
  private readonly consuming = new Map<number, SlotConsumer>();
  private acks: InOrderAcks | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** basic.qos applies to the consumers started after it: consumes go one at a time. */
  private consumes: Promise<void> = Promise.resolve();
  private qos = 0;
  private markOpen: () => void = () => undefined;
  /** Resolves once the channel is open and the current seconds' queues are being consumed. */
  readonly opened = new Promise<void>((resolve) => (this.markOpen = resolve));

  constructor(
    manager: AmqpConnectionManager,
    private readonly options: HoldSlotsOptions,
  ) {
    this.keeper = new ChannelKeeper(manager, {
      create: (model) => model.createChannel(),
      prepare: async (channel) => {
        // Another channel declares them; this one may open first.
        for (let slot = 0; slot < HOLD_SLOTS; slot++) await channel.checkQueue(options.topology.holdQueue(slot));
      },
      opened: (channel) => {
        this.acks = new InOrderAcks(channel);
        this.qos = 0;
        this.consuming.clear();
        this.tick();
        void this.consumes.then(() => this.markOpen());
        void this.sweep(channel);
      },
      lost: () => {
        this.acks = undefined;
        this.consuming.clear();
      },
      error: options.onError,
    });
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Takes no new deliveries; the ones in hand can still be acknowledged. */
  async stopConsuming(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const channel = this.keeper.channel;
    const cancels = [...this.consuming.keys()].map((slot) => this.cancel(channel, slot));
    await settlesWithin(Promise.allSettled(cancels), BROKER_ANSWER_WAIT_MS);
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    // Unacknowledged deliveries go back to their queues when the channel closes.
    await this.keeper.close();
  }

  /** The slots of the seconds from LEAD_MS ahead back to GRACE_MS ago: consumed; the rest: not. */
  private tick(): void {
    const channel = this.keeper.channel;
    if (this.stopped || !channel) return;
    const now = Date.now();
    const wanted = new Set<number>();
    for (let second = Math.floor((now - GRACE_MS) / 1000) - 1; second * 1000 <= now + LEAD_MS; second++) {
      if ((second + 1) * 1000 + GRACE_MS > now) wanted.add(second % HOLD_SLOTS);
    }
    for (const slot of wanted) if (!this.consuming.has(slot)) this.consume(channel, slot, this.options.prefetch);
    for (const [slot, consumer] of this.consuming) {
      if (!wanted.has(slot) && !consumer.sweep) void this.cancel(channel, slot);
    }
  }

  /** Stops the slot's consumer, now or as soon as basic.consume has answered. */
  private async cancel(channel: Channel | undefined, slot: number): Promise<void> {
    const consumer = this.consuming.get(slot);
    if (!consumer) return;
    this.consuming.delete(slot);
    consumer.cancelled = true;
    if (consumer.tag !== undefined && channel) {
      await channel.cancel(consumer.tag).catch(() => undefined);
      this.release(channel, consumer);
    }
  }

  /** After its cancel: what the consumer kept back goes back to the queue (no consumer of it is left). */
  private release(channel: Channel, consumer: SlotConsumer): void {
    consumer.released = true;
    const acks = this.acks;
    const held = consumer.held.splice(0);
    // On another channel now, they went back when theirs closed.
    if (acks && acks.channel === channel) for (const tag of held) acks.requeue(tag);
  }

  private consume(
    channel: Channel,
    slot: number,
    prefetch: number,
    sweep?: (message: ConsumeMessage) => boolean,
  ): SlotConsumer {
    const consumer: SlotConsumer = {
      tag: undefined,
      cancelled: false,
      sweep: sweep !== undefined,
      held: [],
      released: false,
    };
    this.consuming.set(slot, consumer);
    this.consumes = this.consumes.then(() => this.startConsumer(channel, slot, prefetch, consumer, sweep));
    return consumer;
  }

  private async startConsumer(
    channel: Channel,
    slot: number,
    prefetch: number,
    consumer: SlotConsumer,
    sweep?: (message: ConsumeMessage) => boolean,
  ): Promise<void> {
    if (this.keeper.channel !== channel || this.stopped || consumer.cancelled) return;
    try {
      if (this.qos !== prefetch) {
        await channel.prefetch(prefetch);
        this.qos = prefetch;
      }
      const { consumerTag } = await channel.consume(this.options.topology.holdQueue(slot), (message) => {
        const acks = this.acks;
        if (!message || !acks || acks.channel !== channel) return;
        // Deliveries can come before basic.consume's answer is seen, and after a cancel is decided.
        consumer.tag ??= message.fields.consumerTag;
        if (consumer.cancelled || (sweep && !sweep(message))) {
          // Given back once the cancel is done: before, a quorum queue hands it straight back
          // to this consumer, each time counted towards its delivery limit (and dead-lettered at it).
          if (consumer.released) acks.requeue(message.fields.deliveryTag);
          else consumer.held.push(message.fields.deliveryTag);
          return;
        }
        this.options.onMessage(message, acks.delivery(message.fields.deliveryTag));
      });
      consumer.tag = consumerTag;
      if (consumer.cancelled) {
        await channel.cancel(consumerTag).catch(() => undefined);
        this.release(channel, consumer);
      }
    } catch (err) {
      if (this.consuming.get(slot) === consumer) this.consuming.delete(slot);
      this.options.onError(err);
    }
  }

  /**
   * Each slot not being consumed now is consumed until its first message that
   * is not yet due: what is older fell due while nobody consumed it.
   */
  private async sweep(channel: Channel): Promise<void> {
    const now = Date.now();
    for (let slot = 0; slot < HOLD_SLOTS; slot++) {
      if (this.consuming.has(slot) || this.stopped) continue;
      const consumer = this.consume(channel, slot, SWEEP_PREFETCH, (message) => {
        const due = message.properties.headers?.[DUE_HEADER];
        if (typeof due !== 'number' || due <= now + LEAD_MS) return true;
        // The sweep's consumer goes; the slot's own starts when its second comes (or now, if it has).
        if (this.consuming.get(slot) === consumer) {
          void this.cancel(channel, slot);
          this.tick();
        }
        return false;
      });
      await this.consumes;
    }
  }
}

/** One slot's consumer: its tag once known, whether it is to go, whether it sweeps. */
interface SlotConsumer {
  tag: string | undefined;
  cancelled: boolean;
  readonly sweep: boolean;
  /** Deliveries it is not to take, kept unacknowledged until its cancel is done. */
  readonly held: number[];
  /** True once cancelled for good: what comes now goes back at once. */
  released: boolean;
}

/**
 * Acknowledges a channel's deliveries in the order they came, with `multiple`,
 * as soon as every earlier one is settled. A requeue (or reject) goes out at once.
 */
class InOrderAcks {
  /** The lowest delivery tag not yet acknowledged or requeued. */
  private next = 1;
  /** Settled tags above `next`: true acknowledged, false requeued. */
  private readonly settled = new Map<number, boolean>();
  open = true;

  constructor(readonly channel: Channel) {
    channel.once('close', () => (this.open = false));
  }

  delivery(tag: number): Delivery {
    return new InOrderDelivery(this, tag);
  }

  ack(tag: number): void {
    this.settle(tag, true);
  }

  /** Back to the queue, or with `requeue` false to its dead-letter exchange. */
  requeue(tag: number, requeue = true): void {
    if (!this.open) return;
    this.send(() => this.channel.nack({ fields: { deliveryTag: tag } } as Message, false, requeue));
    // Settled now: a later acknowledgement with `multiple` leaves it alone.
    this.settle(tag, false);
  }

  private settle(tag: number, acked: boolean): void {
    if (!this.open) return;
    this.settled.set(tag, acked);
    // The highest acknowledged tag of the settled run from `next`: `multiple` must name an outstanding one.
    let last = 0;
    for (let settled = this.settled.get(this.next); settled !== undefined; settled = this.settled.get(this.next)) {
      this.settled.delete(this.next);
      if (settled) last = this.next;
      this.next++;
    }
    if (last > 0) this.send(() => this.channel.ack({ fields: { deliveryTag: last } } as Message, true));
  }

  private send(fn: () => void): void {
    try {
      fn();
    } catch {
      // the channel closed meanwhile: the broker delivers again what was not acknowledged
    }
  }
}

class InOrderDelivery implements Delivery {
  constructor(
    private readonly acks: InOrderAcks,
    private readonly tag: number,
  ) {}

  get open(): boolean {
    return this.acks.open;
  }

  ack(): void {
    this.acks.ack(this.tag);
  }

  requeue(): void {
    this.acks.requeue(this.tag);
  }

  reject(): void {
    this.acks.requeue(this.tag, false);
  }
}
