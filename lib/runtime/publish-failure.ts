import { MoPublishFailure } from '../errors/mo-publish.error';
import { BrokerContext } from './broker-wait';
import { PublishFailure } from './confirm-publisher';

/**
 * What a `MoPublishError` says for each failure: `what` names the message
 * (routing key, message_id, exchange); the cause's text is redacted.
 */
export function publishFailureText(
  failure: PublishFailure,
  what: string,
  { options, broker, redact }: BrokerContext,
): string {
  const text: Record<MoPublishFailure, () => string> = {
    'spool-full': () =>
      `RabbitMQ at ${broker} could not take ${what} and the spool is full (AMQP__SPOOL_MAX_BYTES = ${options.spoolMaxBytes}); it was not sent`,
    'spool-failed': () =>
      `RabbitMQ at ${broker} could not take ${what} and writing it to the spool in ${options.spoolDir} failed: ${redact(failure.cause)}`,
    timeout: () =>
      `RabbitMQ at ${broker} did not confirm ${what} within ${options.publishTimeoutMs} ms; it may still arrive`,
    overloaded: () =>
      `${options.maxInFlight} publishes are already waiting for RabbitMQ at ${broker} (maxInFlight, AMQP__MAX_IN_FLIGHT = ${options.maxInFlight}); ${what} was not sent`,
    rejected: () => `RabbitMQ at ${broker} rejected ${what}: ${redact(failure.cause)}`,
    closed: () => `The publisher was shut down before RabbitMQ confirmed ${what}`,
    'outbox-failed': () => `Writing ${what} to the outbox table failed: ${redact(failure.cause)}`,
  };
  return text[failure.reason]();
}
