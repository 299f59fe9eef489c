import { MoRoutingKey } from '../events/vocabulary';

/**
 * What became of one event.
 *
 * - `confirmed`: RabbitMQ has confirmed the message (it is in every bound
 *   queue, or no queue was bound to receive it).
 * - `spooled`: the broker could not take it now; it is on disk (fsynced) and is
 *   sent, in order, when the broker can.
 * - `disabled`: AMQP is off (`ENABLE_AMQP`); it was validated but not sent.
 */
export interface MoPublishResult {
  readonly status: 'confirmed' | 'spooled' | 'disabled';
  readonly exchange: string;
  readonly routingKey: MoRoutingKey;
  /** The AMQP `message_id`; consumers deduplicate on it. */
  readonly messageId: string;
  /** The exact body text that was (or would have been) sent. */
  readonly body: string;
}

/** Counts of `MoEventsService.counters`, since the process started. */
export interface MoEventCounters {
  /** Valid events sent towards the broker (each then ends confirmed, spooled or failed). */
  published: number;
  /** Confirmed by the broker. */
  confirmed: number;
  /** Written to the spool instead (the broker could not take them then). */
  spooled: number;
  /** Sent again from the spool and confirmed. */
  resent: number;
  /** Validated but not sent because AMQP is disabled. */
  disabled: number;
  /** Refused with `MoEventValidationError`; nothing sent. */
  invalid: number;
  /** Failed with `MoPublishError` (timeout, overloaded, rejected, closed). */
  failed: number;
  /** Events an `@MoEvent` method owed but did not publish (each also logged at error level). */
  decoratorFailures: number;
  /** Received messages whose `@MoEventSubscribe` handler threw and that were queued again. */
  retried: number;
  /** Received messages sent to a dead-letter queue (malformed, or the handler kept failing). */
  deadLettered: number;
}
