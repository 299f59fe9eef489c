import { AmqpConnection } from '@golevelup/nestjs-rabbitmq';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { ConsumeMessage, Options } from 'amqplib';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { MoEventParseError } from '../errors/mo-event-parse.error';
import { parseMoTime } from '../events/mo-time';
import {
  MO_AMQP_OPTIONS,
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MO_HEADER_ROUTING_KEY,
} from '../mo-amqp.constants';
import { explainExchangeRefusal } from '../runtime/exchanges';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { readMoDelivery } from '../events/mo-event-message';
import { publishPropertiesOf } from '../util/publish-properties';
import { AgentChannel, Delivery } from './agent-channel';
import {
  Route,
  forwardProperties,
  ladderProperties,
  ladderRoutingKeyOf,
  metaOf,
  readLadderHeaders,
} from './ladder-headers';
import { DELAY_HEADER_PREFIX, DelayTopology, delayTopology } from './delay-ladder';
import { checkPrefix, declareAgentTopology } from './agent-topology';
import { Held, HeldMessages } from './held-messages';
import { MO_DELAY_AGENT_OPTIONS } from './mo-delay-agent.module-definition';
import { ResolvedMoDelayAgentOptions } from './mo-delay-agent.options';
import { messageOf } from '../util/error-message';

// Below this a message waits in memory instead of in the ladder (whose unit is a second).
const LADDER_UNIT_MS = 1_000;
/** Held at most at once (see `holdMs`); beyond, messages go through the ladder. Bounds the agent's memory. */
const MAX_HELD = 60_000;
/** Incoming messages in hand besides the held ones: passed on within milliseconds. */
const INCOMING_PREFETCH = 200;

/** What the agent has done since it started. */
export interface MoDelayAgentStats {
  /** Forwarded to the delayed exchange (confirmed). */
  forwarded: number;
  /** Put into the ladder to wait (a long wait may go round more than once). */
  laddered: number;
  /** Sent to the agent's dead-letter queue (malformed). */
  deadLettered: number;
  /** Waiting in memory now for the last fraction of a second. */
  holding: number;
}

/**
 * The delay agent: takes every message of the events exchange from a durable
 * queue, and republishes it, identical (routing key, body bytes, properties with
 * `message_id`), on the delayed exchange once its `time` is due, never before.
 * Pending messages wait in RabbitMQ: those due within `holdMs` unacknowledged
 * while the agent holds them in memory, the rest in a ladder of queues. So the
 * agent keeps no state: stop it, restart it, run several; a message is
 * acknowledged only after its next hop is confirmed (at least once, duplicates possible).
 */
@Injectable()
export class MoDelayAgent implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('MoDelayAgent');
  private readonly topology: DelayTopology;
  private channel: AgentChannel | undefined;
  private readonly held = new HeldMessages((held) => this.release(held));
  /** Deliveries being passed on now (published, waiting for the confirm). */
  private readonly inHand = new Set<Promise<void>>();
  private readonly counts: MoDelayAgentStats = { forwarded: 0, laddered: 0, deadLettered: 0, holding: 0 };

  /** @internal Nest builds it: import `MoDelayAgentModule`. */
  constructor(
    @Inject(MO_AMQP_OPTIONS) private readonly amqp: ResolvedMoAmqpOptions,
    @Inject(MO_DELAY_AGENT_OPTIONS) private readonly options: ResolvedMoDelayAgentOptions,
    private readonly runtime: MoAmqpRuntime,
    @Optional() private readonly amqpConnection?: AmqpConnection,
  ) {
    this.topology = delayTopology(options.prefix);
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
      await this.start(this.amqpConnection);
    } catch (err) {
      await this.runtime.abortStart();
      throw err;
    }
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
    await this.channel?.stopConsuming();
    for (const { delivery } of this.held.drain()) delivery.requeue();
    await Promise.allSettled([...this.inHand]);
    await this.channel?.close();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop(); // done already, unless shutdown's bound cut it short
  }

  private start(amqpConnection: AmqpConnection): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      this.channel = new AgentChannel(amqpConnection.managedConnection, {
        setup: (channel) => declareAgentTopology(channel, this.topology, this.options.queueType, this.amqp),
        consumers: [
          // Incoming messages are passed on within milliseconds: a few hundred in hand keep it busy.
          {
            queue: this.topology.incoming,
            // The held ones count against it too (basic.qos takes at most 65535).
            prefetch: MAX_HELD + Math.min(this.options.prefetch, INCOMING_PREFETCH),
            onMessage: (m, d) => this.track(this.take(m, d, 'incoming')),
          },
          // Due ones may wait here up to a second: as many as fall due in a second.
          {
            queue: this.topology.due,
            prefetch: this.options.prefetch,
            onMessage: (m, d) => void this.take(m, d, 'due'),
          },
        ],
        onError: (err) => {
          const message = messageOf(err);
          if (!ready) {
            const { exchange, delayedExchange } = this.amqp;
            const explained = explainExchangeRefusal(err, [exchange, delayedExchange], this.amqp);
            reject(
              new MoAmqpConnectionError(
                explained
                  ? `The delay agent could not set up its exchanges: ${explained}`
                  : `The delay agent could not declare its queues: ${message}`,
                'RabbitMQ',
              ),
            );
          } else {
            this.logger.error(`Delay agent channel error: ${message}`);
          }
        },
        onReady: () => {
          ready = true;
          resolve();
        },
        // The held deliveries of a closed channel come again; forwarding them too would only duplicate.
        onLost: () => this.held.retain((held) => held.delivery.open),
      });
    });
  }

  private track(work: Promise<void>): void {
    this.inHand.add(work);
    void work.finally(() => this.inHand.delete(work));
  }

  /** One delivery from the incoming or the due queue: forward, hold, or (re)enter the ladder. */
  private async take(message: ConsumeMessage, delivery: Delivery, from: 'incoming' | 'due'): Promise<void> {
    let route: Route;
    try {
      route = from === 'due' ? readLadderHeaders(message) : this.routeOfIncoming(message);
    } catch (err) {
      // Malformed, or steering headers it may not carry: never requeued, never trusted.
      if (!(err instanceof MoEventParseError)) throw err;
      try {
        await this.deadLetter(message, err.message, from);
        delivery.ack();
      } catch (failure) {
        this.giveBack(delivery, failure);
      }
      return;
    }
    try {
      await this.progress(message, delivery, route);
    } catch (err) {
      this.giveBack(delivery, err);
    }
  }

  private async progress(message: ConsumeMessage, delivery: Delivery, route: Route): Promise<void> {
    const remaining = route.due - Date.now();
    if (remaining <= 0) {
      await this.forward(message.content, route.routingKey, forwardProperties(message.properties, route.meta));
      delivery.ack();
    } else if (remaining < LADDER_UNIT_MS || (remaining <= this.options.holdMs && this.held.size < MAX_HELD)) {
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
  private release({ content, routingKey, properties, delivery }: Held): void {
    if (!delivery.open) return; // its channel closed: the broker delivers it again
    this.track(
      this.forward(content, routingKey, properties).then(
        () => delivery.ack(),
        (err: unknown) => this.giveBack(delivery, err),
      ),
    );
  }

  /** A message from the events exchange: the full MO check, and none of the ladder's own headers. */
  private routeOfIncoming(message: ConsumeMessage): Route {
    const { routingKey, exchange } = message.fields;
    const headers = message.properties.headers ?? {};
    const steering = Object.keys(headers).find((key) => key.startsWith(DELAY_HEADER_PREFIX));
    if (steering !== undefined) {
      throw new MoEventParseError(
        `header ${steering}`,
        headers[steering],
        `absent: the delay agent's ${DELAY_HEADER_PREFIX}* headers are its ladder's own, never taken from exchange "${exchange}"`,
        routingKey,
      );
    }
    // Only valid events are delayed; the rest go to the DLQ with the reason.
    const { event } = readMoDelivery(message.content, message, this.amqp.timeZone, 'none');
    const parsed = parseMoTime(event.timeText, this.amqp.timeZone) as NonNullable<ReturnType<typeof parseMoTime>>;
    return {
      // Never early: a time with microseconds beyond the millisecond is due at the next millisecond.
      due: parsed.epochMs + (parsed.extraNanos > 0 ? 1 : 0),
      routingKey,
      exchange,
      meta: metaOf(message.properties),
    };
  }

  private async enterLadder(message: ConsumeMessage, route: Route, seconds: number): Promise<void> {
    const copy = ladderProperties(message.properties, route, seconds);
    await this.runtime.forward(this.topology.entryRouter, '', message.content, copy);
    this.counts.laddered++;
  }

  /** The identical message on the delayed exchange: same routing key, bytes and properties. */
  private async forward(content: Buffer, routingKey: string, properties: Options.Publish): Promise<void> {
    await this.runtime.forward(this.amqp.delayedExchange, routingKey, content, properties);
    this.counts.forwarded++;
  }

  private async deadLetter(message: ConsumeMessage, reason: string, from: 'incoming' | 'due'): Promise<void> {
    const headers = {
      ...(message.properties.headers ?? {}),
      [MO_HEADER_REASON]: reason,
      [MO_HEADER_ROUTING_KEY]: from === 'due' ? ladderRoutingKeyOf(message) : message.fields.routingKey,
      [MO_HEADER_EXCHANGE]: message.fields.exchange,
      [MO_HEADER_QUEUE]: from === 'due' ? this.topology.due : this.topology.incoming,
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

  private giveBack(delivery: Delivery, err: unknown): void {
    this.logger.error(`Delay agent could not pass a message on (${messageOf(err)}); it goes back to its queue`);
    // A pause, so a broker in trouble is not asked again at once.
    setTimeout(() => delivery.requeue(), 1_000).unref();
  }
}
