import { AmqpConnection } from '@golevelup/nestjs-rabbitmq';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { ConsumeMessage, Options } from 'amqplib';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { MoEventParseError } from '../errors/mo-event-parse.error';
import {
  MO_AMQP_OPTIONS,
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MO_HEADER_ROUTING_KEY,
} from '../mo-amqp.constants';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { publishPropertiesOf } from '../util/publish-properties';
import { AgentChannel, Delivery } from './agent-channel';
import { AgentGiveBacks } from './agent-give-backs';
import { Route, forwardProperties, ladderProperties, ladderRoutingKeyOf, readLadderHeaders } from './ladder-headers';
import { DelayTopology, LEVELS, delayTopology, holdSlotOf, route as ladderRoute } from './delay-ladder';
import { checkPrefix, classicAgentWarning, declareAgentTopology, topologyRefused } from './agent-topology';
import { Held, HeldMessages } from './held-messages';
import { routeOfIncoming } from './incoming-route';
import { HoldSlots } from './hold-slots';
import { MO_DELAY_AGENT_OPTIONS } from './mo-delay-agent.module-definition';
import { ResolvedMoDelayAgentOptions } from './mo-delay-agent.options';
import { messageOf } from '../util/error-message';
import { settlesWithin } from '../util/settles-within';
import { forwarding } from '../telemetry/tracing';
import { observeDelayAgent } from '../telemetry/observed';
import { MoDelayAgentStats } from './mo-delay-agent.stats';

// Below this a message waits in memory instead of in the ladder (whose unit is a second).
const LADDER_UNIT_MS = 1_000;
/**
 * A hold queue's messages are due within a few seconds of its being consumed;
 * one due later (put there by something else) takes the ladder, not the memory.
 */
const HOLD_QUEUE_SPAN_MS = 5_000;
/** Incoming messages in hand: passed on within milliseconds. */
const INCOMING_PREFETCH = 200;

type From = 'incoming' | 'due' | 'hold';

/**
 * The delay agent: takes every legacy MO event (three words) of the events exchange from a durable
 * queue, and republishes it, identical (routing key, body bytes, properties with `message_id`), on
 * the delayed exchange once its `time` is due, never before. Pending messages wait in RabbitMQ:
 * those due within `holdMs` unacknowledged while the agent holds them in memory, the rest in a
 * ladder of queues. So the agent keeps no state: stop it, restart it, run several; a message is
 * acknowledged only after its next hop is confirmed (at least once, duplicates possible).
 */
@Injectable()
export class MoDelayAgent implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('MoDelayAgent');
  private readonly topology: DelayTopology;
  private readonly giveBacks: AgentGiveBacks;
  private channel: AgentChannel | undefined;
  private slots: HoldSlots | undefined;
  private readonly held = new HeldMessages((held) => this.release(held));
  /** Deliveries being passed on now (published, waiting for the confirm). */
  private readonly inHand = new Set<Promise<void>>();
  private readonly counts: MoDelayAgentStats = { forwarded: 0, parked: 0, laddered: 0, deadLettered: 0, holding: 0 };
  /** Removes the agent's metrics from the meter (OpenTelemetry) at shutdown. */
  private unobserve: (() => void) | undefined;

  /** @internal Nest builds it: import `MoDelayAgentModule`. */
  constructor(
    @Inject(MO_AMQP_OPTIONS) private readonly amqp: ResolvedMoAmqpOptions,
    @Inject(MO_DELAY_AGENT_OPTIONS) private readonly options: ResolvedMoDelayAgentOptions,
    private readonly runtime: MoAmqpRuntime,
    @Optional() private readonly amqpConnection?: AmqpConnection,
  ) {
    this.topology = delayTopology(options.prefix);
    this.giveBacks = new AgentGiveBacks(
      this.logger,
      options.queueType === 'quorum',
      this.topology.deadLetter,
      () => this.counts.deadLettered++,
    );
    runtime.onShutdown(() => this.stop());
  }

  get stats(): MoDelayAgentStats {
    return { ...this.counts, holding: this.held.size };
  }

  /** Declares the ladder and starts consuming, once the connection is up. */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.amqp.enabled || !this.amqpConnection) {
      throw new MoAmqpConnectionError(
        'The delay agent needs AMQP: set ENABLE_AMQP=true (or enabled: true) in MoAmqpModule',
        'none',
      );
    }
    try {
      checkPrefix(this.topology, this.options.prefix, [this.amqp.exchange, this.amqp.delayedExchange]);
      await this.runtime.requireBroker(); // no durable path: it waits and fails as before, never starts without
      await this.start(this.amqpConnection);
      // "Delaying" is said once the hold queues of these seconds are consumed too (bounded: a
      // channel that cannot open is logged, and it is retried).
      await settlesWithin(this.slots?.opened, this.amqp.connectTimeoutMs);
    } catch (err) {
      await this.runtime.abortStart(err);
      throw err;
    }
    this.unobserve = observeDelayAgent(this);
    this.logger.log(
      `Delaying events from "${this.amqp.exchange}" to "${this.amqp.delayedExchange}" through ${this.topology.incoming}`,
    );
  }

  /**
   * At shutdown, while publishing still works: takes nothing new, lets the
   * messages in hand reach their next hop, gives back the ones waiting for
   * their last fraction of a second (another agent, or the next start, has
   * them), and closes its channel (what is still unacknowledged goes back).
   */
  async stop(): Promise<void> {
    await Promise.all([this.channel?.stopConsuming(), this.slots?.stopConsuming()]);
    for (const { delivery } of this.held.drain()) delivery.requeue();
    await Promise.allSettled([...this.inHand]);
    await Promise.all([this.channel?.close(), this.slots?.close()]);
  }

  async onApplicationShutdown(): Promise<void> {
    this.unobserve?.();
    await this.stop(); // done already, unless shutdown's bound cut it short
  }

  private start(amqpConnection: AmqpConnection): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      this.channel = new AgentChannel(amqpConnection.managedConnection, {
        setup: (channel) =>
          declareAgentTopology(
            channel,
            this.topology,
            this.options.queueType,
            this.amqp,
            amqpConnection.managedConnection.connection,
            this.logger,
          ),
        consumers: [
          // Incoming messages are passed on within milliseconds: a few hundred in hand keep it busy.
          {
            queue: this.topology.incoming,
            prefetch: Math.min(this.options.prefetch, INCOMING_PREFETCH),
            onMessage: (m, d) => this.track(this.take(m, d, 'incoming')),
          },
          // Due ones may wait here up to a second: as many as fall due in a second.
          {
            queue: this.topology.due,
            prefetch: this.options.prefetch,
            onMessage: (m, d) => this.track(this.take(m, d, 'due')),
          },
        ],
        onError: (err) => {
          if (!ready) reject(topologyRefused(err, this.amqp));
          else this.logger.error(`Delay agent channel error: ${messageOf(err)}`);
        },
        onReady: () => {
          if (!ready) {
            this.startSlots(amqpConnection);
            const { connection } = amqpConnection.managedConnection;
            const warning = classicAgentWarning(connection, this.options.queueType, this.amqp, this.topology);
            if (warning) this.logger.warn(warning);
          }
          ready = true;
          resolve();
        },
        // The held deliveries of a closed channel come again; forwarding them too would only duplicate.
        onLost: () => this.held.retain((held) => held.delivery.open),
      });
    });
  }

  /** The hold queues, once the topology is declared: each consumed around its second. */
  private startSlots(amqpConnection: AmqpConnection): void {
    this.slots = new HoldSlots(amqpConnection.managedConnection, {
      topology: this.topology,
      prefetch: this.options.prefetch,
      onMessage: (m, d) => this.track(this.take(m, d, 'hold')),
      onError: (err) => this.logger.error(`Delay agent hold channel error: ${messageOf(err)}`),
    });
  }

  private track(work: Promise<void>): void {
    this.inHand.add(work);
    void work.finally(() => this.inHand.delete(work));
  }

  /** One delivery from the incoming, a hold or the due queue: forward, hold, park, or (re)enter the ladder. */
  private async take(message: ConsumeMessage, delivery: Delivery, from: From): Promise<void> {
    let route: Route;
    try {
      route = from === 'incoming' ? routeOfIncoming(message, this.amqp) : readLadderHeaders(message);
    } catch (err) {
      // Malformed, or steering headers it may not carry: never requeued, never trusted.
      if (!(err instanceof MoEventParseError)) throw err;
      try {
        await this.deadLetter(message, err.message, from);
        this.giveBacks.done(message);
        delivery.ack();
      } catch (failure) {
        this.giveBacks.giveBack(delivery, failure, message);
      }
      return;
    }
    try {
      await this.progress(message, delivery, route, from);
      this.giveBacks.done(message);
    } catch (err) {
      this.giveBacks.giveBack(delivery, err, message);
    }
  }

  private async progress(message: ConsumeMessage, delivery: Delivery, route: Route, from: From): Promise<void> {
    const remaining = route.due - Date.now();
    if (remaining <= 0) {
      await this.forward(
        message.content,
        route.routingKey,
        forwardProperties(message.properties, route.meta),
        route.due,
      );
      delivery.ack();
    } else if (from === 'incoming' && remaining <= this.options.holdMs) {
      // Into the hold queue of its second: one more write, acknowledged at once, held later for about a second.
      const slot = this.topology.holdQueue(holdSlotOf(route.due));
      await this.runtime.forward('', slot, message.content, ladderProperties(message.properties, route));
      this.counts.parked++;
      delivery.ack();
    } else if (remaining < LADDER_UNIT_MS || (from === 'hold' && remaining <= HOLD_QUEUE_SPAN_MS)) {
      this.held.add({
        due: route.due,
        routingKey: route.routingKey,
        content: Buffer.from(message.content),
        properties: forwardProperties(message.properties, route.meta),
        delivery,
      });
    } else {
      await this.enterLadder(message, route, Math.floor(remaining / LADDER_UNIT_MS));
      delivery.ack();
    }
  }

  /** A held message whose time has come: forwarded, then acknowledged. */
  private release({ content, routingKey, properties, delivery, due }: Held): void {
    if (!delivery.open) return; // its channel closed: the broker delivers it again
    const key = { fields: { exchange: '', routingKey }, properties, content };
    this.track(
      this.forward(content, routingKey, properties, due).then(
        () => {
          this.giveBacks.done(key);
          delivery.ack();
        },
        (err: unknown) => this.giveBacks.giveBack(delivery, err, key),
      ),
    );
  }

  private async enterLadder(message: ConsumeMessage, route: Route, seconds: number): Promise<void> {
    const copy = ladderProperties(message.properties, route, seconds);
    // Straight into the queue the entry router would choose: the broker need not match its 29 bindings.
    const level = ladderRoute(LEVELS, copy.headers as Record<string, string>);
    const queue = level === 'due' ? this.topology.due : this.topology.waitQueue(level);
    await this.runtime.forward('', queue, message.content, copy);
    this.counts.laddered++;
  }

  /** The identical message on the delayed exchange: same routing key, bytes and properties. */
  private async forward(content: Buffer, routingKey: string, properties: Options.Publish, due: number): Promise<void> {
    const exchange = this.amqp.delayedExchange;
    // In its own span, linked to the producer's; the copy keeps the producer's trace headers.
    await forwarding(exchange, routingKey, properties, due, () =>
      this.runtime.forward(exchange, routingKey, content, properties),
    );
    this.counts.forwarded++;
  }

  private async deadLetter(message: ConsumeMessage, reason: string, from: From): Promise<void> {
    const { fields } = message;
    const headers = {
      ...(message.properties.headers ?? {}),
      [MO_HEADER_REASON]: reason,
      [MO_HEADER_ROUTING_KEY]: from === 'incoming' ? fields.routingKey : ladderRoutingKeyOf(message),
      [MO_HEADER_EXCHANGE]: fields.exchange,
      // A hold queue's messages come from the default exchange, by the queue's name.
      [MO_HEADER_QUEUE]: { incoming: this.topology.incoming, due: this.topology.due, hold: fields.routingKey }[from],
    };
    await this.runtime.forward(
      '',
      this.topology.deadLetter,
      message.content,
      publishPropertiesOf(message.properties, headers),
    );
    this.counts.deadLettered++;
    this.logger.warn(`Message ${message.properties.messageId} went to ${this.topology.deadLetter}: ${reason}`);
  }
}
