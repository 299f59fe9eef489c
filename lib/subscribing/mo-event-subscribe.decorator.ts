import { RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import type { ConsumeMessage } from 'amqplib';
import { MO_EVENT_SUBSCRIBE_METADATA } from '../mo-amqp.constants';
import { consumeDelivery, consumerBindingOf } from './mo-event-consumer';
import { DEFAULT_PREFETCH, MoEventSubscribeOptions } from './mo-event-subscribe.options';
import { MoEventSubscription, configNameOf, prefetchChannel, queueArguments } from './subscriptions';

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
    const subscription: MoEventSubscription = {
      options,
      method: key,
      handlerName,
      configName: configNameOf(options?.queue),
    };
    const prefetch = options?.prefetch ?? DEFAULT_PREFETCH;

    // golevelup calls this, with the raw bytes; it parses, then calls the method itself. The
    // instance carries its application's binding (MoEventSubscriberExplorer hangs it there).
    const handler = function (this: object, content: Buffer, message: ConsumeMessage) {
      return consumeDelivery({ method: key, binding: consumerBindingOf(this, key) }, this, content, message);
    };
    Object.defineProperty(target, handlerName, { value: handler, configurable: true, writable: true });
    RabbitSubscribe({
      // The exchange is known at start-up only: golevelup takes it from its `handlers` option under this name.
      name: subscription.configName,
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

    Reflect.defineMetadata(MO_EVENT_SUBSCRIBE_METADATA, subscription, target, key);
  };
}
