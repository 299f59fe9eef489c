import { RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import type { ConsumeMessage } from 'amqplib';
import { MoEventDecoratorError } from '../errors/mo-event-decorator.error';
import { MO_EVENT_SUBSCRIBE_METADATA } from '../mo-amqp.constants';
import { consumeDelivery, consumerBindingOf } from './mo-event-consumer';
import { DEFAULT_PREFETCH, MoChangeSubscribeOptions, MoEventSubscribeOptions } from './mo-event-subscribe.options';
import { MoEventSubscription, configNameOf, decoratorOf, prefetchChannel, queueArguments } from './subscriptions';

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
  const routingKey = [options?.service ?? '*', options?.objectType ?? '*', options?.action ?? '*'].join('.');
  return (target, key) =>
    subscribe(target, key, { format: 'event', options, ...names(key, options, 'event') }, routingKey);
}

/**
 * Consumes the messages of OS2mo's AMQP subsystem (2023-): one-word routing key,
 * the object type; body the object's UUID as a JSON string. The handler gets a
 * validated `MoChangeMessage`; retries, back-off and dead-lettering are those of
 * `@MoEventSubscribe`. To read both of OS2mo's words for role bindings, give
 * both: `objectType: ['rolebinding', 'role']`.
 *
 * ```ts
 * @MoChangeSubscribe({ queue: 'payroll.engagement-changes', objectType: 'engagement' })
 * async onEngagement(change: MoChangeMessage) { … } // then read the engagement as it is now
 * ```
 */
export function MoChangeSubscribe(options: MoChangeSubscribeOptions): MethodDecorator {
  const given = options?.objectType;
  // A bad value is refused at start-up with the decorator's error; until then it binds as written.
  const routingKey = given === undefined ? '*' : Array.isArray(given) ? [...given] : String(given);
  return (target, key) =>
    subscribe(target, key, { format: 'change', options, ...names(key, options, 'change') }, routingKey);
}

function names(key: string | symbol, options: { queue?: unknown } | undefined, format: 'event' | 'change') {
  return {
    method: key,
    handlerName: `${String(key)} (${decoratorOf({ format }).slice(1)})`,
    configName: configNameOf(options?.queue),
  };
}

function subscribe(
  target: object,
  key: string | symbol,
  subscription: MoEventSubscription,
  routingKey: string | string[],
): void {
  const { options, handlerName } = subscription;
  const earlier: MoEventSubscription | undefined = Reflect.getOwnMetadata(MO_EVENT_SUBSCRIBE_METADATA, target, key);
  if (earlier) {
    // One queue per method: a second would replace the first's subscription, which would then consume nothing.
    throw new MoEventDecoratorError(
      `${target.constructor.name}.${String(key)}`,
      `it already has ${decoratorOf(earlier)}; give each consumer a method of its own`,
      decoratorOf(subscription),
    );
  }
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
    routingKey,
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
}
