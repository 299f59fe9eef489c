import type { Logger } from '@nestjs/common';
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import { resolve } from 'node:path';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { BrokerContext, connectRefusal } from './broker-wait';

type DurableOptions = Pick<ResolvedMoAmqpOptions, 'spoolDir' | 'outbox' | 'outboxTable'>;

/** Where events wait while the broker is away (the spool, the outbox table); undefined without either. */
export function durablePath(options: DurableOptions): string | undefined {
  const paths = [
    ...(options.spoolDir === 'off' ? [] : [`the spool in ${resolve(options.spoolDir)}`]),
    ...(options.outbox === 'postgres' ? [`the outbox table ${options.outboxTable}`] : []),
  ];
  return paths.length > 0 ? paths.join(' and ') : undefined;
}

/** Whether start-up goes on once the broker has proved unreachable (never when it refuses). */
export function startsWithoutBroker(options: DurableOptions & Pick<ResolvedMoAmqpOptions, 'startWithoutBroker'>) {
  if (options.startWithoutBroker === 'auto') return durablePath(options) !== undefined;
  return options.startWithoutBroker === 'true';
}

/** The one WARN of a start without the broker: where, why, where events go, and how to fail instead. */
export function startedWithoutBrokerWarning(
  options: ResolvedMoAmqpOptions,
  broker: string,
  lastError = 'no answer yet',
): string {
  const path = durablePath(options);
  return (
    `Started without RabbitMQ: ${broker} is unreachable (last error: ${lastError}). ` +
    (path
      ? `Events wait in ${path} and are sent once it answers. `
      : 'Without the spool or the outbox, publishes fail with MoPublishError until it answers. ') +
    `AMQP__START_WITHOUT_BROKER=${options.startWithoutBroker} (startWithoutBroker); ` +
    'AMQP__START_WITHOUT_BROKER=false waits for it and fails instead.'
  );
}

/**
 * Why the broker is not connected now, for the health indicator: the last
 * connect error or refusal (passwords masked), from the first attempt on. A
 * refusal after start-up (a changed password) is logged as an ERROR once, with
 * the text start-up would have failed with; it is logged again only after a
 * connection in between.
 */
export class BrokerStatus {
  private reason: string | undefined = 'no answer yet';
  private logged: string | undefined;
  /** Set once start-up has finished: refusals before are start-up's to report. */
  started = false;

  constructor(
    manager: AmqpConnectionManager,
    private readonly context: BrokerContext,
    private readonly logger: Logger,
  ) {
    manager.on('connectFailed', ({ err, url }: { err?: Error; url?: unknown }) => {
      const refusal = connectRefusal(err, url, context);
      this.reason = refusal ?? context.redact(err);
      if (refusal) this.refused(refusal);
    });
    manager.on('connect', () => {
      this.reason = undefined;
      this.logged = undefined;
    });
    manager.on('disconnect', ({ err }: { err?: Error }) => {
      this.reason = err ? context.redact(err) : 'the connection closed';
    });
  }

  /** The last connect error or refusal; undefined while connected (or never told why). */
  get lastError(): string | undefined {
    return this.reason;
  }

  /** The publisher's channel failed (an exchange refused): kept as the reason; the publisher logs it. */
  channelFailed(text: string): void {
    this.reason = text;
  }

  private refused(text: string): void {
    if (!this.started || this.logged === text) return;
    this.logged = text;
    const path = durablePath(this.context.options);
    this.logger.error(
      `${text}. ${path ? `Events wait in ${path}` : 'Publishes fail'} until that is fixed (health: brokerError).`,
    );
  }
}
