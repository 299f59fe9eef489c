import { RabbitMQConfig } from '@golevelup/nestjs-rabbitmq';
import type { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MO_EVENT_SUBSCRIBE_METADATA } from '../mo-amqp.constants';
import { providerPrototype } from '../util/provider-prototype';
import { DEFAULT_PREFETCH, MoChangeSubscribeOptions, MoEventSubscribeOptions } from './mo-event-subscribe.options';

/** Quorum queues dead-letter a message the broker has delivered this often (consumers crashing on it). */
export const QUORUM_DELIVERY_LIMIT = 10;

/**
 * The subscription of one method, as `@MoEventSubscribe` (format `event`) or
 * `@MoChangeSubscribe` (format `change`) leaves it in the method's metadata.
 */
export type MoEventSubscription =
  | (SubscriptionBase & { readonly format: 'event'; readonly options: MoEventSubscribeOptions })
  | (SubscriptionBase & { readonly format: 'change'; readonly options: MoChangeSubscribeOptions });

/** The decorator's name, for messages: `@MoEventSubscribe` or `@MoChangeSubscribe`. */
export function decoratorOf(
  subscription: Pick<MoEventSubscription, 'format'>,
): '@MoEventSubscribe' | '@MoChangeSubscribe' {
  return subscription.format === 'change' ? '@MoChangeSubscribe' : '@MoEventSubscribe';
}

interface SubscriptionBase {
  /** The decorated method (the one the handler calls with the parsed event). */
  readonly method: string | symbol;
  /** The method golevelup calls (it carries the `@RabbitSubscribe` metadata). */
  readonly handlerName: string;
  /** Its key in golevelup's `handlers` option, which supplies the exchange known only at start-up. */
  readonly configName: string;
}

/** The key of a subscription in golevelup's `handlers`: one per queue (an application consumes a queue once). */
export function configNameOf(queue: unknown): string {
  return `mo-amqp:subscription:${String(queue)}`;
}

/** One `@MoEventSubscribe` on a provider (or controller) of the application. */
export interface FoundSubscription {
  /** `Class.method`, for messages. */
  readonly label: string;
  readonly subscription: MoEventSubscription;
  readonly wrapper: InstanceWrapper;
}

/**
 * The `@MoEventSubscribe` methods on one provider's class, read from their
 * metadata: the instance's prototype, or for a provider not made yet the class's
 * (a factory provider's class cannot be known before it runs).
 */
export function subscriptionsOn(wrapper: InstanceWrapper, scanner: MetadataScanner): FoundSubscription[] {
  const prototype = providerPrototype(wrapper);
  if (!prototype) return [];
  const found: FoundSubscription[] = [];
  for (const name of scanner.getAllMethodNames(prototype)) {
    const subscription: MoEventSubscription | undefined = Reflect.getMetadata(
      MO_EVENT_SUBSCRIBE_METADATA,
      prototype,
      name,
    );
    if (subscription) found.push({ label: `${prototype.constructor.name}.${name}`, subscription, wrapper });
  }
  return found;
}

/** Every `@MoEventSubscribe` on the application's providers (its modules are scanned before any is made). */
export function discoverSubscriptions(discovery: DiscoveryService, scanner: MetadataScanner): MoEventSubscription[] {
  return discovery.getProviders().flatMap((wrapper) => subscriptionsOn(wrapper, scanner).map((f) => f.subscription));
}

export function prefetchChannel(prefetch: number): string {
  return `mo-amqp:prefetch:${prefetch}`;
}

/** The exchange a subscription binds to: its own, the delayed one, or the events exchange. */
export function subscriptionExchange(
  options: MoEventSubscribeOptions | MoChangeSubscribeOptions,
  amqp: Pick<ResolvedMoAmqpOptions, 'exchange' | 'delayedExchange'>,
): string {
  if (options.exchange !== undefined) return options.exchange;
  return 'delayed' in options && options.delayed ? amqp.delayedExchange : amqp.exchange;
}

/**
 * golevelup's supported options for the application's `@MoEventSubscribe`
 * methods: one channel per prefetch asked for, and under `handlers` the
 * exchange each binds to.
 */
export function golevelupSubscriberConfig(
  amqp: Pick<ResolvedMoAmqpOptions, 'exchange' | 'delayedExchange'>,
  subscriptions: readonly MoEventSubscription[],
): Pick<RabbitMQConfig, 'channels' | 'handlers'> {
  const prefetches = new Set(subscriptions.map(({ options }) => options?.prefetch ?? DEFAULT_PREFETCH));
  return {
    channels: Object.fromEntries(
      [...prefetches].filter(Number.isInteger).map((n) => [prefetchChannel(n), { prefetchCount: n }]),
    ),
    handlers: Object.fromEntries(
      subscriptions.map(({ options, configName }) => [configName, { exchange: subscriptionExchange(options, amqp) }]),
    ),
  };
}

/** Where failed messages wait for their next try: its TTL'd messages dead-letter back to the queue. */
export function retryQueueOf(queue: string): string {
  return `${queue}.retry`;
}

export function deadLetterQueueOf(queue: string): string {
  return `${queue}.dlq`;
}

/** Queue arguments: dead-letter into `<queue>.dlq`; quorum type and delivery limit when asked. */
export function queueArguments(queue: string, queueType: 'classic' | 'quorum' | undefined): Record<string, unknown> {
  return {
    'x-dead-letter-exchange': '',
    'x-dead-letter-routing-key': deadLetterQueueOf(queue),
    ...(queueType === 'quorum' && { 'x-queue-type': 'quorum', 'x-delivery-limit': QUORUM_DELIVERY_LIMIT }),
  };
}
