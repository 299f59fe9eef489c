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
  /** Written to the outbox table inside a transaction (the outbox on). */
  outboxed: number;
  /** Outbox rows this process's relay published and the broker confirmed. */
  relayed: number;
  /** Events an `@MoEvent` method owed but did not publish (each also logged at error level). */
  decoratorFailures: number;
  /** Received messages whose `@MoEventSubscribe` handler threw and that were queued again. */
  retried: number;
  /** Received messages sent to a dead-letter queue (malformed, or the handler kept failing). */
  deadLettered: number;
}

/** `MoEventsService.spoolStats`: what the spool holds now. */
export interface MoSpoolStats {
  /** Bytes on disk, and on their way there. */
  bytes: number;
  /** Events waiting to be sent. */
  records: number;
  /** When the oldest of them was spooled (epoch ms); undefined when none wait. */
  oldestSpooledAt: number | undefined;
}

/** What the runtime counts itself; `resent` is the outbox's. */
export type CountedHere = Exclude<keyof MoEventCounters, 'resent'>;

/** Every count the runtime keeps, at zero. */
export function zeroCounters(): Record<CountedHere, number> {
  return {
    published: 0,
    confirmed: 0,
    spooled: 0,
    disabled: 0,
    invalid: 0,
    failed: 0,
    outboxed: 0,
    relayed: 0,
    decoratorFailures: 0,
    retried: 0,
    deadLettered: 0,
  };
}
