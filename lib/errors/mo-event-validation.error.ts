import { describeValue } from '../util/describe-value';

/**
 * An event argument that breaks the message contract. Nothing was sent.
 *
 * `field` names the argument (`service`, `uuid`, `options.time`, …), `value` is
 * what was received and `allowed` says what would have been accepted.
 */
export class MoEventValidationError extends Error {
  override readonly name = 'MoEventValidationError';

  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`Invalid MO event ${field}: received ${describeValue(value)}; allowed: ${allowed}`);
  }
}
