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
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { brokerUrlsOf } from '../config/mo-amqp-options.schema';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { MoPublishError, MoPublishFailure } from '../errors/mo-publish.error';
import { MoEventOptions, MoOutgoingEvent, buildMoEvent } from '../events/mo-event';
import { MoActionOf, MoObjectTypeOf, MoPublishVocabulary, MoService } from '../events/vocabulary';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { describeValue } from '../util/describe-value';
import { BROKER_ANSWER_WAIT_MS, settlesWithin } from '../util/settles-within';
import { moEventProperties } from '../util/publish-properties';
import { errorRedactor, redactUrl } from '../util/redact';
import { DiskSpool, SPOOL_START_BOUND_MS } from '../spool/disk-spool';
import { ConfirmPublisher, PublishFailure } from './confirm-publisher';
import { explainTlsFailure, tlsSecrets } from '../config/tls';
import { explainConnectRefusal } from './connect-failure';
import { explainExchangeRefusal, setUpExchange } from './exchanges';
import { Outbox } from './outbox';
import { MoEventCounters, MoPublishResult } from './mo-publish-result';

/**
 * Publishes MO events on the configured topic exchange.
 *
 * ```ts
 * await events.publish('employee', 'engagement', 'create', personUuid, { time: validFrom });
 * ```
 */
@Injectable()
export class MoEventsService implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger(MoEventsService.name);
  /** The broker address as it may be shown: password masked. */
  private readonly broker: string;
  /** An error's message with the brokers' passwords (and the TLS key's passphrase) masked. */
  private readonly redact: (err: unknown) => string;
  /** Undefined when AMQP is disabled. */
  private readonly publisher: ConfirmPublisher | undefined;
  /** The publish path: the publisher with the spool around it. */
  private readonly outbox: Outbox | undefined;
  private readonly spool: DiskSpool | undefined;
  private readonly amqpConnection: AmqpConnection | undefined;
  /** What this service counts itself; `resent` is the outbox's. */
  private readonly counts: Omit<MoEventCounters, 'resent'> = {
    published: 0,
    confirmed: 0,
    spooled: 0,
    disabled: 0,
    invalid: 0,
    failed: 0,
    decoratorFailures: 0,
    retried: 0,
    deadLettered: 0,
  };
  /** Start-up listens here for the first set-up failure. */
  private onPublisherError: ((err: unknown) => void) | undefined;
  /** Ends the start-up wait early when start-up failed elsewhere. */
  private cancelStart: ((err: Error) => void) | undefined;
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
    this.redact = errorRedactor(urls, tlsSecrets(options));
    if (options.enabled && amqpConnection) {
      this.amqpConnection = amqpConnection;
      boundClose(amqpConnection, BROKER_ANSWER_WAIT_MS, (ms) =>
        this.logger.warn(`RabbitMQ at ${this.broker} did not answer the close within ${ms} ms: connection cut`),
      );
      this.publisher = new ConfirmPublisher(amqpConnection.managedConnection, {
        timeoutMs: options.publishTimeoutMs,
        // Runs on every new channel, so the exchange exists before the first publish.
        // The delayed one is declared by what uses it (the agent, a delayed subscriber).
        setup: (channel) => setUpExchange(channel, options.exchange, options),
        // The spool's records may name another exchange; each is set up the same way.
        declareExchange: (channel, name) => setUpExchange(channel, name, options),
        onError: (err) => {
          this.logger.error(`RabbitMQ channel error at ${this.broker}: ${this.redact(err)}`);
          this.onPublisherError?.(err);
        },
        // Not before start-up has adopted what is left: the two would race over the spool directory.
        onOpen: () => this.started && this.outbox?.kick(),
      });
      this.spool =
        options.spoolDir === 'off'
          ? undefined
          : new DiskSpool(resolve(options.spoolDir), options.spoolMaxBytes, (message) => this.logger.error(message));
      this.outbox = new Outbox(this.publisher, this.spool, options.maxInFlight, this.logger);
    }
  }

  /** True when AMQP is enabled: events go to the broker. */
  get enabled(): boolean {
    return this.publisher !== undefined;
  }

  /** What has happened to the events of this process so far (a copy). */
  get counters(): MoEventCounters {
    return { ...this.counts, resent: this.outbox?.resent ?? 0 };
  }

  /** The spool now: bytes, records and when the oldest was spooled; undefined without one. */
  get spoolStats(): DiskSpool['stats'] | undefined {
    return this.spool?.stats;
  }

  /** True while a channel to the broker is open and set up. */
  get connected(): boolean {
    return this.publisher?.ready ?? false;
  }

  /** @internal Counts what the decorators and consumers did (each is also logged). */
  count(what: 'decoratorFailures' | 'retried' | 'deadLettered'): void {
    this.counts[what]++;
  }

  /** @internal Runs `stop` at shutdown, before publishing stops: consumers finish what they hold first. */
  onShutdown(stop: () => Promise<void>): void {
    this.stoppers.push(stop);
  }

  /**
   * @internal Publishes a message as it is (no validation, no new id), on the
   * same confirm channel: resolves on the confirm, rejects with `MoPublishError`.
   * Consumers retry and dead-letter through it.
   */
  async forward(exchange: string, routingKey: string, content: Buffer, properties: Options.Publish): Promise<void> {
    if (!this.publisher) throw new Error('AMQP is disabled (ENABLE_AMQP is off)');
    try {
      await this.publisher.publish(exchange, routingKey, content, properties);
    } catch (err) {
      const failure = err instanceof PublishFailure ? err : new PublishFailure('rejected', err);
      const what = `message_id ${properties.messageId} to "${routingKey}" on exchange "${exchange}"`;
      throw new MoPublishError(
        failure.reason === 'timeout'
          ? `RabbitMQ at ${this.broker} did not confirm ${what} within ${this.options.publishTimeoutMs} ms`
          : `Could not publish ${what} to RabbitMQ at ${this.broker}: ${failure.reason} ${this.redact(failure.cause ?? '')}`,
        failure.reason,
        routingKey,
        String(properties.messageId),
      );
    }
  }

  /**
   * Validates and publishes one event; resolves once RabbitMQ has confirmed it
   * (`status: 'confirmed'`) or it is durably on disk to be sent later
   * (`status: 'spooled'`).
   *
   * Rejects with `MoEventValidationError` (nothing sent) for a bad argument, and
   * with `MoPublishError` when it could be neither confirmed nor spooled (the
   * spool full or off). When AMQP is disabled it resolves at once with
   * `status: 'disabled'`.
   */
  async publish(
    service: MoService,
    objectType: MoObjectTypeOf<MoPublishVocabulary>,
    action: MoActionOf<MoPublishVocabulary>,
    uuid: string,
    options?: MoEventOptions,
  ): Promise<MoPublishResult> {
    let event: MoOutgoingEvent;
    try {
      event = buildMoEvent(service, objectType, action, uuid, options, this.options);
    } catch (err) {
      this.counts.invalid++;
      throw err;
    }
    const messageId = randomUUID();
    const { exchange } = this.options;
    if (!this.outbox) {
      this.counts.disabled++;
      return { status: 'disabled', exchange, routingKey: event.routingKey, messageId, body: event.body };
    }
    let status: 'confirmed' | 'spooled';
    this.counts.published++;
    try {
      // The body is ASCII (validated), where latin1 is the same bytes as UTF-8, and cheaper to encode.
      status = await this.outbox.send(
        exchange,
        event.routingKey,
        Buffer.from(event.body, 'latin1'),
        moEventProperties(messageId),
      );
    } catch (err) {
      const failure = err instanceof PublishFailure ? err : new PublishFailure('rejected', err);
      throw this.failure(failure.reason, event, messageId, failure.cause);
    }
    this.counts[status]++;
    return { status, exchange, routingKey: event.routingKey, messageId, body: event.body };
  }

  /** Start-up waits for the broker, so a wrong address stops the app instead of every publish. */
  async onModuleInit(): Promise<void> {
    if (!this.publisher || !this.amqpConnection) {
      this.logger.log('AMQP is disabled (ENABLE_AMQP is off): no connection is opened and no event is sent');
      return;
    }
    try {
      // Side by side: the wait must be listening from the start, or it misses the first connect failure.
      await Promise.all([this.checkSpool(), this.waitForBroker(this.amqpConnection, this.publisher)]);
      this.logger.log(`Publishing MO events to exchange "${this.options.exchange}" at ${this.broker}`);
      if (this.spool) {
        const waiting = await this.recoverSpool(this.spool);
        if (waiting > 0) this.logger.warn(`Sending ${waiting} spool segment(s) left from before, in order`);
      }
      this.started = true;
      this.outbox?.kick();
    } catch (err) {
      await this.abortStart();
      throw err;
    }
  }

  /**
   * Lets confirms in flight arrive (each is bounded by the publish timeout), then
   * refuses new publishes: the connection closes next.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.publisher || !this.outbox || !this.amqpConnection) return;
    // One bound for all of it: consumers finishing, then confirms.
    const deadline = Date.now() + this.options.shutdownTimeoutMs;
    const left = () => Math.max(0, deadline - Date.now());
    // Consumers first, while publishing still works: they take nothing new and
    // finish what they hold (its retries, dead-letter copies and events still go out).
    await settlesWithin(Promise.all(this.stoppers.map((stop) => stop())), left());
    await settlesWithin(stopGolevelupConsumers(this.amqpConnection), left());
    if (this.publisher.size > 0) {
      this.logger.log(`Waiting up to ${left()} ms for ${this.publisher.size} publish confirm(s)`);
    }
    await this.outbox.close(left());
    const spooled = this.spool?.stats;
    if (spooled && spooled.bytes > 0) {
      this.logger.warn(`${spooled.records} event(s) wait in the spool for the next start`);
    }
  }

  /** For an app closed without `beforeApplicationShutdown` having run (a failed start). */
  async onApplicationShutdown(): Promise<void> {
    await this.publisher?.close();
  }

  /**
   * @internal Closes the connection when start-up fails: Nest runs no shutdown
   * hook after a failed init, and the reconnect loop would keep the process alive.
   */
  async abortStart(): Promise<void> {
    this.cancelStart?.(new Error('start-up failed'));
    // Stops the spool's timers at once; what is in flight is spooled for the next start.
    const outboxClosed = this.outbox?.close(0);
    await this.publisher?.close();
    // Bounded: close() first waits for a connection attempt in progress.
    if (this.amqpConnection) {
      await settlesWithin(this.amqpConnection.managedConnection.close(), BROKER_ANSWER_WAIT_MS);
    }
    // Bounded too: the spool's directory may be on a mount that hangs.
    await settlesWithin(outboxClosed, SPOOL_START_BOUND_MS);
  }

  /** What earlier processes left in the spool directory; a failure names the directory. */
  private async recoverSpool(spool: DiskSpool): Promise<number> {
    try {
      return await spool.recover();
    } catch (err) {
      throw this.spoolDirError(err);
    }
  }

  /** A spool directory that cannot be written is bad configuration: said at start, not at the first outage. */
  private async checkSpool(): Promise<void> {
    try {
      await this.spool?.check();
    } catch (err) {
      throw this.spoolDirError(err);
    }
  }

  private spoolDirError(err: unknown): MoAmqpConfigError {
    return new MoAmqpConfigError([
      {
        name: 'AMQP__SPOOL_DIR (spoolDir)',
        received: describeValue(this.options.spoolDir),
        allowed: `a directory this process can create and write in, or off (${this.redact(err)})`,
      },
    ]);
  }

  /** Resolves once this publisher's channel and golevelup's own channel are set up. */
  private waitForBroker(amqpConnection: AmqpConnection, publisher: ConfirmPublisher): Promise<void> {
    const connection = amqpConnection.managedConnection;
    return new Promise<void>((resolve, reject) => {
      let lastError = 'no answer yet';
      const done = (err?: Error) => {
        clearTimeout(timer);
        connection.removeListener('connectFailed', onConnectFailed);
        this.onPublisherError = undefined;
        this.cancelStart = undefined;
        if (err) reject(err);
        else resolve();
      };
      const onConnectFailed = ({ err, url }: { err?: Error; url?: unknown }) => {
        lastError = this.redact(err);
        // What waiting cannot change ends start-up at once, saying why. TLS first:
        // a refused certificate login is not a wrong password.
        const tls = explainTlsFailure(err, this.options);
        if (tls) return done(new MoAmqpConnectionError(`RabbitMQ at ${this.broker}: ${this.redact(tls)}`, this.broker));
        const refusal = explainConnectRefusal(lastError, typeof url === 'string' ? url : '');
        if (refusal) done(new MoAmqpConnectionError(`${refusal} (${lastError})`, this.broker));
      };
      this.onPublisherError = (err) => {
        const { exchange, exchangeDurable, declareExchanges } = this.options;
        const explained = explainExchangeRefusal(err, [exchange], this.options);
        const asked = declareExchanges
          ? `to declare exchange "${exchange}" as a ${exchangeDurable ? 'durable' : 'non-durable'} topic exchange`
          : `the check that exchange "${exchange}" exists`;
        done(
          new MoAmqpConnectionError(
            explained
              ? `RabbitMQ at ${this.broker}: ${explained}`
              : `RabbitMQ at ${this.broker} refused ${asked}: ${this.redact(err)}`,
            this.broker,
          ),
        );
      };
      const timer = setTimeout(
        () =>
          done(
            new MoAmqpConnectionError(
              `Could not connect to RabbitMQ at ${this.broker} within ${this.options.connectTimeoutMs} ms (last error: ${lastError}). ` +
                'Start the broker, or set AMQP__URL (or AMQP__HOST/AMQP__PORT) to where it runs; ENABLE_AMQP=false runs without one.',
              this.broker,
            ),
          ),
        this.options.connectTimeoutMs,
      );
      this.cancelStart = done;
      connection.on('connectFailed', onConnectFailed);
      Promise.all([publisher.whenReady(), amqpConnection.managedChannel.waitForConnect()]).then(() => done(), done);
    });
  }

  private failure(
    reason: MoPublishFailure,
    event: MoOutgoingEvent,
    messageId: string,
    cause?: unknown,
  ): MoPublishError {
    this.counts.failed++;
    const what = `${event.routingKey} (message_id ${messageId}) on exchange "${this.options.exchange}"`;
    const text: Record<MoPublishFailure, string> = {
      'spool-full': `RabbitMQ at ${this.broker} could not take ${what} and the spool is full (AMQP__SPOOL_MAX_BYTES = ${this.options.spoolMaxBytes}); it was not sent`,
      'spool-failed': `RabbitMQ at ${this.broker} could not take ${what} and writing it to the spool in ${this.options.spoolDir} failed: ${this.redact(cause)}`,
      timeout: `RabbitMQ at ${this.broker} did not confirm ${what} within ${this.options.publishTimeoutMs} ms; it may still arrive`,
      overloaded: `${this.options.maxInFlight} publishes are already waiting for RabbitMQ at ${this.broker} (maxInFlight, AMQP__MAX_IN_FLIGHT = ${this.options.maxInFlight}); ${what} was not sent`,
      rejected: `RabbitMQ at ${this.broker} rejected ${what}: ${this.redact(cause)}`,
      closed: `The publisher was shut down before RabbitMQ confirmed ${what}`,
    };
    return new MoPublishError(text[reason], reason, event.routingKey, messageId);
  }
}

/**
 * Cancels every golevelup consumer (no new deliveries) and waits for the
 * handlers in progress, whose messages are then acked or requeued as usual.
 * golevelup's own close() does this too, but only after publishing has stopped.
 */
async function stopGolevelupConsumers(amqpConnection: AmqpConnection): Promise<void> {
  for (const tag of amqpConnection.consumerTags) await amqpConnection.cancelConsumer(tag).catch(() => undefined);
  const inProgress = (amqpConnection as unknown as { outstandingMessageProcessing?: Set<Promise<void>> })
    .outstandingMessageProcessing;
  await Promise.allSettled([...(inProgress ?? [])]);
}

/**
 * golevelup's close waits for the broker's answers (consumer cancels, channel and
 * connection close) without a bound, so a broker that stopped answering hangs
 * `app.close()` for ever. Bounds it: past `ms` the connection manager stops
 * reconnecting and the socket is cut. Nothing is lost by then: it runs after
 * `beforeApplicationShutdown`, when consumers have finished and what publishing
 * could not get confirmed is spooled.
 */
function boundClose(amqpConnection: AmqpConnection, ms: number, onCut: (ms: number) => void): void {
  const close = amqpConnection.close.bind(amqpConnection);
  amqpConnection.close = async () => {
    if (await settlesWithin(close(), ms)) return;
    onCut(ms);
    const manager = amqpConnection.managedConnection;
    void manager.close().catch(() => undefined); // stops reconnecting at once; its answer never comes
    const model = manager.connection as unknown as { connection?: { stream?: { destroy(): void } } } | undefined;
    model?.connection?.stream?.destroy();
  };
}
