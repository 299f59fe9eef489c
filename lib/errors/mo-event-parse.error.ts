import { describeValue } from '../util/describe-value';

/**
 * A received message that is not a valid MO event: not JSON, not an object,
 * a missing or malformed `uuid` or `time`, a routing key outside both vocabularies.
 * `field` names what was wrong (`body`, `uuid`, `time`, `object_uuid`, `routing key`).
 */
export class MoEventParseError extends Error {
  override readonly name = 'MoEventParseError';

  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly allowed: string,
    readonly routingKey: string,
  ) {
    super(`Malformed MO event on "${routingKey}": ${field}: received ${describeValue(value)}; allowed: ${allowed}`);
  }
}
