/** Injection token of the validated, defaulted options (`ResolvedMoAmqpOptions`). */
export const MO_AMQP_OPTIONS = Symbol.for('mo-amqp:options');
