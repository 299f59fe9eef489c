import { RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import type { ConsumeMessage } from 'amqplib';
import { MoAction, MoObjectType, MoService } from '../events/vocabulary';
import { MO_EVENT_SUBSCRIBE_METADATA } from '../mo-amqp.constants';
import { ConsumerState, consumeDelivery } from './mo-event-consumer';

/** Options of `@MoEventSubscribe`. Only `queue` is required. */
export interface MoEventSubscribeOptions {
  /** A durable queue of this name receives the events; `<queue>.dlq` receives the failures. */
  queue: string;
  /** The three words of the binding, from either vocabulary; a missing one binds `*`. */
  service?: MoService;
  objectType?: MoObjectType;
  action?: MoAction;
  /** Bind to the delayed exchange (`AMQP__DELAYED_EXCHANGE`) instead of the events exchange. */
  delayed?: boolean;
  /** Bind to this exchange by name instead (it must exist). */
  exchange?: string;
  /** `quorum` for clusters (replicated; crash loops end after 10 deliveries). Default `classic`. */
  queueType?: 'classic' | 'quorum';
  /** Messages handled at once. Default 10. */
  prefetch?: number;
  /** How often a message whose handler throws is tried again before it is dead-lettered. Default 3. */
  retries?: number;
  /**
   * How long a failed message waits before it is tried again: this after the
   * first failure, doubling after each further one (at most a day). It waits in
   * `<queue>.retry`, held by the broker, so the consumer goes on with other
   * messages. 0 tries again at once. Default 5,000 ms.
   */
  retryDelayMs?: number;
}

export const DEFAULT_PREFETCH = 10;
export const DEFAULT_RETRIES = 3;
export const DEFAULT_RETRY_DELAY_MS = 5_000;
/** Quorum queues dead-letter a message the broker has delivered this often (consumers crashing on it). */
export const QUORUM_DELIVERY_LIMIT = 10;

/** The recorded subscription of one method. */
export interface MoEventSubscription {
  readonly options: MoEventSubscribeOptions;
  /** The method golevelup calls (it carries the `@RabbitSubscribe` metadata). */
  readonly handlerName: string;
  readonly state: ConsumerState;
}

/** Every prefetch a subscription asked for: the module opens one golevelup channel per value. */
export const subscriberPrefetches = new Set<number>();

export function prefetchChannel(prefetch: number): string {
  return `mo-amqp:prefetch:${prefetch}`;
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

/**
 * Consumes MO events with a typed, validated message, on golevelup's
 * `@RabbitSubscribe`. A malformed message goes to `<queue>.dlq` without calling
 * the handler; a handler that throws is tried again up to `retries` times, then
 * dead-lettered. Every dead-lettered copy says why in its `x-mo-amqp-reason` header.
 *
 * ```ts
 * @MoEventSubscribe({ queue: 'payroll.engagements', objectType: 'engagement' }) // binds *.engagement.*
 * async onEngagement(event: MoEventMessage) { … }
 * ```
 */
export function MoEventSubscribe(options: MoEventSubscribeOptions): MethodDecorator {
  return (target, key) => {
    const handlerName = `${String(key)} (MoEventSubscribe)`;
    const state: ConsumerState = { method: key, binding: undefined };
    const prefetch = options?.prefetch ?? DEFAULT_PREFETCH;
    if (Number.isInteger(prefetch)) subscriberPrefetches.add(prefetch);

    // golevelup calls this, with the raw bytes; it parses, then calls the method itself.
    const handler = function (this: object, content: Buffer, message: ConsumeMessage) {
      return consumeDelivery(state, this, content, message);
    };
    Object.defineProperty(target, handlerName, { value: handler, configurable: true, writable: true });
    RabbitSubscribe({
      // The events exchange is known at start-up only; the explorer fills it in.
      exchange: options?.exchange,
      routingKey: [options?.service ?? '*', options?.objectType ?? '*', options?.action ?? '*'].join('.'),
      queue: options?.queue,
      createQueueIfNotExists: true,
      queueOptions: {
        durable: true,
        arguments: queueArguments(options?.queue, options?.queueType),
        channel: prefetchChannel(prefetch),
      },
      // The bytes reach the handler untouched: a body that is not JSON is ours to dead-letter.
      allowNonJsonMessages: true,
      deserializer: (content: Buffer) => content,
    })(target, handlerName, Object.getOwnPropertyDescriptor(target, handlerName) as PropertyDescriptor);

    const subscription: MoEventSubscription = { options, handlerName, state };
    Reflect.defineMetadata(MO_EVENT_SUBSCRIBE_METADATA, subscription, target, key);
  };
}
