/**
 * AMQP is enabled but the broker could not be used at start-up: unreachable
 * within the connect timeout, refused the login, or refused to declare the
 * exchange. `broker` is the address with its password masked.
 */
export class MoAmqpConnectionError extends Error {
  override readonly name = 'MoAmqpConnectionError';

  constructor(
    message: string,
    readonly broker: string,
  ) {
    super(message);
  }
}
