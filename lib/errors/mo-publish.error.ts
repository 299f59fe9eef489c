/** Why a publish was not confirmed. */
export type MoPublishFailure =
  /** The broker did not confirm within the publish timeout (it may still deliver it). */
  | 'timeout'
  /** Too many publishes are already waiting for the broker; this one was not queued. */
  | 'overloaded'
  /** The broker refused the message (a negative confirm). */
  | 'rejected'
  /** The publisher was closed (application shutdown) before the confirm arrived. */
  | 'closed'
  /** It would have been spooled, but the spool holds AMQP__SPOOL_MAX_BYTES already. */
  | 'spool-full'
  /** It would have been spooled, but writing the spool failed (disk full, permissions). */
  | 'spool-failed'
  /** Inside a transaction with the outbox on: the insert into the outbox table failed (the transaction cannot commit). */
  | 'outbox-failed';

/**
 * A valid event that RabbitMQ has not confirmed. The message may or may not have
 * reached the broker (`timeout` after the write), so retrying can duplicate it:
 * consumers deduplicate on `messageId`.
 */
export class MoPublishError extends Error {
  override readonly name = 'MoPublishError';

  constructor(
    message: string,
    readonly reason: MoPublishFailure,
    readonly routingKey: string,
    readonly messageId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
