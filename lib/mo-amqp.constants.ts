/** Injection token of the validated, defaulted options (`ResolvedMoAmqpOptions`). */
export const MO_AMQP_OPTIONS = Symbol.for('mo-amqp:options');

/** Reflect metadata key of `@MoEvent` definitions, on (prototype, method name). */
export const MO_EVENT_METADATA = 'mo-amqp:event';
/** Where `@MoEvent` sits among a method's decorators: the token of its transaction point. */
export const MO_EVENT_POINT = 'mo-amqp:mo-event-point';

/** Reflect metadata key of `@MoEventSubscribe` options, on (prototype, method name). */
export const MO_EVENT_SUBSCRIBE_METADATA = 'mo-amqp:subscribe';

/** Headers the consumer adds when it retries or dead-letters a message. */
export const MO_HEADER_ATTEMPT = 'x-mo-amqp-attempt';
export const MO_HEADER_REASON = 'x-mo-amqp-reason';
export const MO_HEADER_ROUTING_KEY = 'x-mo-amqp-routing-key';
export const MO_HEADER_EXCHANGE = 'x-mo-amqp-exchange';
export const MO_HEADER_QUEUE = 'x-mo-amqp-queue';
/** How often `mo-amqp dlq requeue` put a message back from a dead-letter queue. */
export const MO_HEADER_REQUEUED = 'x-mo-amqp-requeued';
