/** Injection token of the validated, defaulted options (`ResolvedMoAmqpOptions`). */
export const MO_AMQP_OPTIONS = Symbol.for('mo-amqp:options');

/** Reflect metadata key of `@MoEvent` definitions, on (prototype, method name). */
export const MO_EVENT_METADATA = 'mo-amqp:event';
