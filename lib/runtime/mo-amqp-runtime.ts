import { AmqpConnection } from '@golevelup/nestjs-rabbitmq';
import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationShutdown,
  OnModuleInit,
  Optional,
} from '@nestjs/common';
import type { Options } from 'amqplib';
import { resolve } from 'node:path';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { brokerUrlsOf } from '../config/mo-amqp-options.schema';
import { tlsSecrets } from '../config/tls';
import { MoPublishError } from '../errors/mo-publish.error';
import { MoOutgoingMessage } from '../events/mo-event';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { DiskSpool, SPOOL_START_BOUND_MS } from '../spool/disk-spool';
import { moEventProperties } from '../util/publish-properties';
import { errorRedactor, redactUrl } from '../config/redact';
import { BROKER_ANSWER_WAIT_MS, settlesWithin } from '../util/settles-within';
import {
  batchSocketWrites,
  boundClose,
  internalsMissing,
  reclaimGolevelupConnection,
  stopGolevelupConsumers,
} from './amqp-internals';
import { BrokerContext, BrokerWait, exchangeRefusal, waitForBroker } from './broker-wait';
import { BrokerStatus, startedWithoutBrokerWarning, startsWithoutBroker } from './start-without-broker';
import { ConfirmPublisher, PublishFailure } from './confirm-publisher';
import { setUpExchange } from './exchanges';
import { CountedHere, MoEventCounters, MoSpoolStats, zeroCounters } from './mo-amqp-stats';
import { SpooledPublisher } from './spooled-publisher';
import { publishFailureText } from './publish-failure';
import { checkSpool, recoverSpool } from './spool-start';
import { outboxSecrets } from '../config/outbox-options';
import { startSending } from '../telemetry/tracing';
import { observeRuntime } from '../telemetry/observed';
import { recordSendDuration, sendClock } from '../telemetry/metrics';

/**
 * Not public. Owns this package's use of the application's RabbitMQ connection:
 * the confirm publisher, the spooled publisher, the wait for the broker at
 * start-up, and the order of shutdown (consumers first, then confirms, then the
 * connection). `MoEventsService` is its public face; the consumers and the delay
 * agent use it to forward messages and to be stopped in order.
 */
@Injectable()
export class MoAmqpRuntime implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('MoEventsService');
  /** The broker address as it may be shown: password masked. */
  private readonly broker: string;
  /** An error's message with the brokers' passwords (and the TLS key's passphrase) masked. */
  readonly redact: (err: unknown) => string;
  /** What start-up and failure texts name. */
  private readonly context: BrokerContext;
  /** Undefined when AMQP is disabled. */
  private readonly publisher: ConfirmPublisher | undefined;
  /** The publish path: the publisher with the spool around it. */
  private readonly spooledPublisher: SpooledPublisher | undefined;
  private readonly spool: DiskSpool | undefined;
  private readonly amqpConnection: AmqpConnection | undefined;
  private readonly counts: Record<CountedHere, number> = zeroCounters();
  /** Removes the counters and the spool's figures from the meter (OpenTelemetry) at shutdown. */
  private unobserve: (() => void) | undefined;
  /** The start-up wait, while it runs. */
  private wait: BrokerWait | undefined;
  /** Why the broker is not connected, for the health indicator. */
  private readonly status: BrokerStatus | undefined;
  /** True once start-up has read the spool: from then on every new channel drains it. */
  private started = false;
  /** What stops taking messages at shutdown, before publishing stops (the delay agent). */
  private readonly stoppers: (() => Promise<void>)[] = [];

  constructor(
    @Inject(MO_AMQP_OPTIONS) private readonly options: ResolvedMoAmqpOptions,
    @Optional() amqpConnection?: AmqpConnection,
  ) {
    const urls = brokerUrlsOf(options);
    this.broker = urls.map(redactUrl).join(', ');
    this.redact = errorRedactor(urls, [...tlsSecrets(options), ...outboxSecrets(options)]);
    this.context = { options, broker: this.broker, redact: this.redact };
    if (!options.enabled || !amqpConnection) return;
    this.amqpConnection = amqpConnection;
    this.status = new BrokerStatus(amqpConnection.managedConnection, this.context, this.logger);
    boundClose(amqpConnection, BROKER_ANSWER_WAIT_MS, (ms) =>
      this.logger.warn(`RabbitMQ at ${this.broker} did not answer the close within ${ms} ms: connection cut`),
    );
    // What one tick publishes (or acknowledges) goes to the socket in one write, on every connection.
    const manager = amqpConnection.managedConnection;
    manager.on('connect', () => batchSocketWrites(manager));
    batchSocketWrites(manager);
    this.publisher = new ConfirmPublisher(amqpConnection.managedConnection, {
      timeoutMs: options.publishTimeoutMs,
      // Runs on every new channel, so the exchange exists before the first publish.
      // The delayed one is declared by what uses it (the agent, a delayed subscriber).
      setup: (channel) => setUpExchange(channel, options.exchange, options),
      // The spool's records may name another exchange; each is set up the same way.
      declareExchange: (channel, name) => setUpExchange(channel, name, options),
      onError: (err) => {
        this.logger.error(`RabbitMQ channel error at ${this.broker}: ${this.redact(err)}`);
        this.status?.channelFailed(exchangeRefusal(err, this.context).message);
        this.wait?.publisherFailed(err);
      },
      // Not before start-up has adopted what is left: the two would race over the spool directory.
      onOpen: () => this.started && this.spooledPublisher?.kick(),
    });
    this.spool =
      options.spoolDir === 'off'
        ? undefined
        : new DiskSpool(resolve(options.spoolDir), options.spoolMaxBytes, (message) => this.logger.error(message));
    this.spooledPublisher = new SpooledPublisher(this.publisher, this.spool, options.maxInFlight, this.logger);
  }

  /** True when AMQP is enabled: events go to the broker. */
  get enabled(): boolean {
    return this.publisher !== undefined;
  }

  /** What has happened to the events of this process so far (a copy). */
  get counters(): MoEventCounters {
    return { ...this.counts, resent: this.spooledPublisher?.resent ?? 0 };
  }

  /** The spool now: bytes, records and when the oldest was spooled; undefined without one. */
  get spoolStats(): MoSpoolStats | undefined {
    return this.spool?.stats;
  }

  /** True while a channel to the broker is open and set up. */
  get connected(): boolean {
    return this.publisher?.ready ?? false;
  }

  /** Why the broker is not connected (the last connect error or refusal, passwords masked); undefined while it is. */
  get brokerError(): string | undefined {
    return !this.publisher || this.connected ? undefined : (this.status?.lastError ?? 'not connected yet');
  }

  /** Resolves once the publisher's channel is open and its exchange set up (again after an outage). */
  whenConnected(): Promise<void> {
    return this.publisher?.whenReady() ?? Promise.resolve();
  }

  /** For what cannot work without the broker (the delay agent): waits and fails as a start with it would. */
  async requireBroker(): Promise<void> {
    if (!this.publisher || !this.amqpConnection) return;
    this.wait = waitForBroker(this.amqpConnection, this.publisher, this.context);
    await this.wait.done.finally(() => (this.wait = undefined));
  }

  count(what: CountedHere): void {
    this.counts[what]++;
  }

  /** Runs `stop` at shutdown, before publishing stops: consumers finish what they hold first. */
  onShutdown(stop: () => Promise<void>): void {
    this.stoppers.push(stop);
  }

  /**
   * Sends a validated event: resolves once RabbitMQ has confirmed it or it is
   * durably spooled, `disabled` at once when AMQP is off; rejects with
   * `MoPublishError`. The testing module records here instead.
   */
  async send(event: MoOutgoingMessage, messageId: string): Promise<'confirmed' | 'spooled' | 'disabled'> {
    if (!this.spooledPublisher) {
      this.counts.disabled++;
      return 'disabled';
    }
    const { exchange } = this.options;
    // The producer span, and the trace headers every copy of the event carries (the spool's too).
    const sending = startSending(exchange, event.routingKey, messageId, event.body.length);
    this.counts.published++;
    let status: 'confirmed' | 'spooled';
    try {
      // The body is ASCII (validated), where latin1 is the same bytes as UTF-8, and cheaper to encode.
      const content = Buffer.from(event.body, 'latin1');
      const properties = moEventProperties(messageId, sending.headers);
      status = await this.spooledPublisher.send(exchange, event.routingKey, content, properties);
    } catch (err) {
      this.counts.failed++;
      const failure = err instanceof PublishFailure ? err : new PublishFailure('rejected', err);
      sending.end('failed', failure.reason);
      const what = `${event.routingKey} (message_id ${messageId}) on exchange "${this.options.exchange}"`;
      const text = publishFailureText(failure, what, this.context);
      throw new MoPublishError(text, failure.reason, event.routingKey, messageId);
    }
    this.counts[status]++;
    sending.end(status);
    return status;
  }

  /**
   * Publishes a message as it is (no validation, no new id), on the same confirm
   * channel: resolves on the confirm, rejects with `MoPublishError`. Consumers
   * retry and dead-letter through it; the delay agent forwards through it.
   */
  async forward(exchange: string, routingKey: string, content: Buffer, properties: Options.Publish): Promise<void> {
    if (!this.publisher) throw new Error('AMQP is disabled (ENABLE_AMQP is off)');
    const started = sendClock();
    try {
      await this.publisher.publish(exchange, routingKey, content, properties);
      recordSendDuration(exchange, started);
    } catch (err) {
      const failure = err instanceof PublishFailure ? err : new PublishFailure('rejected', err);
      recordSendDuration(exchange, started, failure.reason);
      const what = `message_id ${properties.messageId} to "${routingKey}" on exchange "${exchange}"`;
      const text = publishFailureText(failure, what, this.context);
      throw new MoPublishError(text, failure.reason, routingKey, String(properties.messageId));
    }
  }

  /** Waits for the broker (a wrong address stops the app, not every publish); see startWithoutBroker. */
  async onModuleInit(): Promise<void> {
    if (!this.publisher || !this.amqpConnection) {
      const rows = this.options.outbox === 'postgres' ? ' (those produced in a transaction become outbox rows)' : '';
      this.logger.log(`AMQP is disabled (ENABLE_AMQP is off): no connection is opened and no event is sent${rows}`);
      return;
    }
    const missing = internalsMissing(this.amqpConnection);
    if (missing.length > 0) {
      this.logger.warn(`Not found in this installation (shutdown waits less for handlers): ${missing.join('; ')}`);
    }
    try {
      // Side by side: the wait must be listening from the start, or it misses the first connect failure.
      const giveUpEarly = startsWithoutBroker(this.options);
      this.wait = waitForBroker(this.amqpConnection, this.publisher, this.context, giveUpEarly);
      const [, reached] = await Promise.all([checkSpool(this.spool, this.options, this.redact), this.wait.done]);
      this.wait = undefined;
      if (reached === 'connected') {
        this.logger.log(`Publishing MO events to exchange "${this.options.exchange}" at ${this.broker}`);
      } else this.logger.warn(startedWithoutBrokerWarning(this.options, this.broker, this.status?.lastError));
      if (this.spool) {
        const waiting = await recoverSpool(this.spool, this.options, this.redact);
        if (waiting > 0) this.logger.warn(`Sending ${waiting} spool segment(s) left from before, in order`);
      }
      this.started = true;
      if (this.status) this.status.started = true;
      this.spooledPublisher?.kick();
      this.unobserve = observeRuntime(this);
    } catch (err) {
      await this.abortStart();
      throw err;
    }
  }

  /**
   * Lets consumers finish and confirms in flight arrive (all within
   * `shutdownTimeoutMs`), then refuses new publishes: the connection closes next.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.publisher || !this.spooledPublisher || !this.amqpConnection) return;
    // golevelup's shutdown then closes this application's connection, not another's.
    reclaimGolevelupConnection(this.amqpConnection);
    const deadline = Date.now() + this.options.shutdownTimeoutMs;
    const left = () => Math.max(0, deadline - Date.now());
    // Consumers first, while publishing still works: they take nothing new and
    // finish what they hold (its retries, dead-letter copies and events still go out).
    await settlesWithin(Promise.all(this.stoppers.map((stop) => stop())), left());
    await settlesWithin(stopGolevelupConsumers(this.amqpConnection), left());
    if (this.publisher.size > 0) {
      this.logger.log(`Waiting up to ${left()} ms for ${this.publisher.size} publish confirm(s)`);
    }
    await this.spooledPublisher.close(left());
    const spooled = this.spool?.stats;
    if (spooled && spooled.bytes > 0) {
      this.logger.warn(`${spooled.records} event(s) wait in the spool for the next start`);
    }
  }

  /** For an app closed without `beforeApplicationShutdown` having run (a failed start). */
  async onApplicationShutdown(): Promise<void> {
    this.unobserve?.();
    await this.publisher?.close();
  }

  /**
   * Closes the connection when start-up fails: Nest runs no shutdown hook after
   * a failed init, and the reconnect loop would keep the process alive.
   */
  async abortStart(cause?: unknown): Promise<void> {
    // The cause, so whichever hook rejects first, start-up fails with what went wrong.
    this.wait?.cancel(cause instanceof Error ? cause : new Error('start-up failed'));
    // Stops the spool's timers at once; what is in flight is spooled for the next start.
    const publisherClosed = this.spooledPublisher?.close(0);
    await this.publisher?.close();
    // Bounded: close() first waits for a connection attempt in progress.
    if (this.amqpConnection) {
      await settlesWithin(this.amqpConnection.managedConnection.close(), BROKER_ANSWER_WAIT_MS);
    }
    // Bounded too: the spool's directory may be on a mount that hangs.
    await settlesWithin(publisherClosed, SPOOL_START_BOUND_MS);
  }
}
