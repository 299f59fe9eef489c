import { RabbitMQConfig } from '@golevelup/nestjs-rabbitmq';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { ConsumerState } from './mo-event-consumer';
import { DEFAULT_PREFETCH, MoEventSubscribeOptions } from './mo-event-subscribe.options';

/** Quorum queues dead-letter a message the broker has delivered this often (consumers crashing on it). */
export const QUORUM_DELIVERY_LIMIT = 10;

/** The recorded subscription of one method. */
export interface MoEventSubscription {
  readonly options: MoEventSubscribeOptions;
  /** The method golevelup calls (it carries the `@RabbitSubscribe` metadata). */
  readonly handlerName: string;
  /** Its key in golevelup's `handlers` option, which supplies the exchange known only at start-up. */
  readonly configName: string;
  readonly state: ConsumerState;
}

/** Every `@MoEventSubscribe` so far, in order: the module configures golevelup's channels and handlers from it. */
const subscriptions: MoEventSubscription[] = [];

/** Keeps a subscription that a decorator has just made; its `configName` is unique in the process. */
export function recordSubscription(make: (configName: string) => MoEventSubscription): MoEventSubscription {
  const subscription = make(`mo-amqp:subscription:${subscriptions.length}`);
  subscriptions.push(subscription);
  return subscription;
}

export function prefetchChannel(prefetch: number): string {
  return `mo-amqp:prefetch:${prefetch}`;
}

/** The exchange a subscription binds to: its own, the delayed one, or the events exchange. */
export function subscriptionExchange(
  options: MoEventSubscribeOptions,
  amqp: Pick<ResolvedMoAmqpOptions, 'exchange' | 'delayedExchange'>,
): string {
  if (options.exchange !== undefined) return options.exchange;
  return options.delayed ? amqp.delayedExchange : amqp.exchange;
}

/**
 * golevelup's supported options for every `@MoEventSubscribe` declared so far
 * (the decorators have run once the app's modules are imported): one channel
 * per prefetch asked for, and under `handlers` the exchange each binds to.
 */
export function golevelupSubscriberConfig(
  amqp: Pick<ResolvedMoAmqpOptions, 'exchange' | 'delayedExchange'>,
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
