import { MoRoutingKey } from '../events/vocabulary';

/**
 * What became of one event (or one subsystem message, `MoPublishResult<MoChangeObjectType>`).
 *
 * - `confirmed`: RabbitMQ has confirmed the message (it is in every bound
 *   queue, or no queue was bound to receive it).
 * - `spooled`: the broker could not take it now; it is on disk (fsynced) and is
 *   sent, in order, when the broker can.
 * - `outboxed`: called inside a transaction with the outbox on; it is a row of
 *   that transaction, and the relay publishes it once the transaction commits
 *   (nothing is sent if it rolls back).
 * - `disabled`: AMQP is off (`ENABLE_AMQP`); it was validated but not sent.
 */
export interface MoPublishResult<K extends string = MoRoutingKey> {
  readonly status: 'confirmed' | 'spooled' | 'outboxed' | 'disabled';
  readonly exchange: string;
  /** `employee.engagement.create`; a subsystem message's (`publishChange`) is its object type. */
  readonly routingKey: K;
  /** The AMQP `message_id`; consumers deduplicate on it. */
  readonly messageId: string;
  /** The exact body text that was (or would have been) sent. */
  readonly body: string;
}
