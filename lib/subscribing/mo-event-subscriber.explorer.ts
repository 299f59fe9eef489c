import { AmqpConnection, RABBIT_HANDLER } from '@golevelup/nestjs-rabbitmq';
import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  OnModuleInit,
  Optional,
} from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import type { ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { MoEventDecoratorError } from '../errors/mo-event-decorator.error';
import { describeAllowedWords, findBadMoWord } from '../events/vocabulary';
import { MO_AMQP_OPTIONS, MO_EVENT_SUBSCRIBE_METADATA } from '../mo-amqp.constants';
import { explainExchangeRefusal, setUpExchange } from '../publishing/exchanges';
import { MoEventsService } from '../publishing/mo-events.service';
import { ConsumerBinding } from './mo-event-consumer';
import {
  DEFAULT_RETRIES,
  DEFAULT_RETRY_DELAY_MS,
  MoEventSubscription,
  deadLetterQueueOf,
  queueArguments,
  retryQueueOf,
} from './mo-event-subscribe.decorator';
import { MAX_RETRY_DELAY_MS } from './mo-event-consumer';

// 249, so that "<queue>.retry" is a queue name too (255 at most).
const QUEUE_NAME = /^(?!amq\.)[\w.:-]{1,249}$/;
const EXCHANGE_NAME = /^(?!amq\.)[\w.:-]{1,255}$/;

interface Found {
  readonly label: string;
  readonly subscription: MoEventSubscription;
  readonly prototype: object;
}

/**
 * Makes `@MoEventSubscribe` methods consume: checks their options at start-up,
 * points their golevelup subscription at the configured exchange, and declares
 * each queue with its dead-letter queue (again after every reconnect) before
 * golevelup starts consuming.
 */
@Injectable()
export class MoEventSubscriberExplorer implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('MoEventSubscribe');
  private found: Found[] = [];
  private declarations: ChannelWrapper | undefined;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly events: MoEventsService,
    @Inject(MO_AMQP_OPTIONS) private readonly options: ResolvedMoAmqpOptions,
    @Optional() private readonly amqpConnection?: AmqpConnection,
  ) {}

  async onModuleInit(): Promise<void> {
    try {
      this.prepare();
    } catch (err) {
      await this.events.abortStart();
      throw err;
    }
  }

  /** Runs before golevelup's own bootstrap (this module is global), so the queues exist when it consumes. */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.options.enabled || this.found.length === 0 || !this.amqpConnection) return;
    try {
      await this.declareQueues(this.amqpConnection);
    } catch (err) {
      await this.events.abortStart();
      throw err;
    }
  }

  private prepare(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const [found] = this.subscriptionsOf(wrapper);
      if (found)
        throw new MoEventDecoratorError(
          found.label,
          'controllers cannot consume; put it on a provider',
          '@MoEventSubscribe',
        );
    }
    const queues = new Map<string, string>();
    for (const wrapper of this.discovery.getProviders()) {
      for (const found of this.subscriptionsOf(wrapper)) {
        if (!wrapper.isDependencyTreeStatic()) {
          throw new MoEventDecoratorError(
            found.label,
            'request-scoped and transient providers cannot consume (golevelup binds one instance at start-up); make the provider a singleton',
            '@MoEventSubscribe',
          );
        }
        validate(found);
        const { queue } = found.subscription.options;
        const other = queues.get(queue);
        if (other) {
          throw new MoEventDecoratorError(
            found.label,
            `queue "${queue}" is already consumed by ${other}; give each its own`,
            '@MoEventSubscribe',
          );
        }
        queues.set(queue, found.label);
        this.found.push(found);
      }
    }
    if (this.found.length > 0 && !this.options.enabled) {
      this.logger.log(
        `AMQP is disabled (ENABLE_AMQP is off): ${this.found.length} @MoEventSubscribe handler(s) do not consume`,
      );
    }
    if (!this.options.enabled) return;

    for (const { label, subscription, prototype } of this.found) {
      const { options, handlerName, state } = subscription;
      const config = Reflect.getMetadata(RABBIT_HANDLER, (prototype as Record<string, object>)[handlerName]);
      config.exchange = this.exchangeOf(subscription);
      state.binding = this.bindingFor(
        label,
        options.queue,
        options.retries ?? DEFAULT_RETRIES,
        options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS,
      );
    }
  }

  private async declareQueues(amqpConnection: AmqpConnection): Promise<void> {
    const subscriptions = this.found.map((f) => f.subscription);
    const declarations = amqpConnection.managedConnection.createChannel({
      name: 'mo-amqp-declarations',
      confirm: false,
      setup: (channel: ConfirmChannel) => this.declare(channel, subscriptions),
    });
    this.declarations = declarations;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        const explained = explainExchangeRefusal(err, [this.options.delayedExchange], this.options);
        const hint = /ACCESS[-_]REFUSED/.test(err.message)
          ? 'The RabbitMQ user needs configure, write and read on each queue, its .dlq and its .retry, read on the exchange, ' +
            'and write on amq.default (dead-lettering, retries and dead-letter copies go through it).'
          : 'A queue that already exists with other arguments (type, dead-letter queue) must be deleted or renamed.';
        reject(
          new MoAmqpConnectionError(
            explained
              ? `RabbitMQ refused the exchange of a delayed @MoEventSubscribe: ${explained}`
              : `RabbitMQ refused to declare the @MoEventSubscribe queues: ${err.message}. ${hint}`,
            'RabbitMQ',
          ),
        );
      };
      declarations.once('error', onError);
      declarations.waitForConnect().then(() => {
        declarations.removeListener('error', onError);
        resolve();
      }, reject);
    });
    // Later set-up failures (after a reconnect) are logged, not thrown.
    declarations.on('error', (err: Error) => this.logger.error(`Declaring the consumer queues failed: ${err.message}`));
  }

  async onApplicationShutdown(): Promise<void> {
    for (const { subscription } of this.found) subscription.state.binding = undefined;
    await this.declarations?.close().catch(() => undefined);
  }

  private async declare(channel: ConfirmChannel, subscriptions: MoEventSubscription[]): Promise<void> {
    // A refused declaration then closes this channel only, not the connection the publisher shares.
    channel.on('error', () => undefined);
    // The delayed exchange is declared only where something uses it: here, and by the agent.
    if (subscriptions.some(({ options }) => options.delayed && !options.exchange)) {
      await setUpExchange(channel, this.options.delayedExchange, this.options);
    }
    for (const { options } of subscriptions) {
      const quorum = options.queueType === 'quorum' ? { 'x-queue-type': 'quorum' } : {};
      await channel.assertQueue(deadLetterQueueOf(options.queue), { durable: true, arguments: quorum });
      if ((options.retries ?? DEFAULT_RETRIES) > 0 && (options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS) > 0) {
        // No consumer: each message expires after its own wait and goes back to the queue.
        await channel.assertQueue(retryQueueOf(options.queue), {
          durable: true,
          arguments: {
            ...quorum,
            ...(options.queueType === 'quorum' && {
              'x-dead-letter-strategy': 'at-least-once',
              'x-overflow': 'reject-publish',
            }),
            'x-dead-letter-exchange': '',
            'x-dead-letter-routing-key': options.queue,
          },
        });
      }
      await channel.assertQueue(options.queue, {
        durable: true,
        arguments: queueArguments(options.queue, options.queueType),
      });
    }
  }

  private exchangeOf({ options }: MoEventSubscription): string {
    if (options.exchange) return options.exchange;
    return options.delayed ? this.options.delayedExchange : this.options.exchange;
  }

  private bindingFor(label: string, queue: string, retries: number, retryDelayMs: number): ConsumerBinding {
    return {
      label,
      queue,
      deadLetterQueue: deadLetterQueueOf(queue),
      retryQueue: retryQueueOf(queue),
      retries,
      retryDelayMs,
      timeZone: this.options.timeZone,
      logger: this.logger,
      forward: (exchange, routingKey, content, properties) =>
        this.events.forward(exchange, routingKey, content, properties),
      count: (what) => this.events.count(what),
    };
  }

  private subscriptionsOf(wrapper: InstanceWrapper): Found[] {
    if (wrapper.isAlias) return [];
    const prototype: object | undefined = wrapper.isDependencyTreeStatic()
      ? wrapper.instance && Object.getPrototypeOf(wrapper.instance)
      : !wrapper.inject && typeof wrapper.metatype === 'function'
        ? wrapper.metatype.prototype
        : undefined;
    if (!prototype) return [];
    const found: Found[] = [];
    for (const name of this.scanner.getAllMethodNames(prototype)) {
      const subscription: MoEventSubscription | undefined = Reflect.getMetadata(
        MO_EVENT_SUBSCRIBE_METADATA,
        prototype,
        name,
      );
      if (subscription) found.push({ label: `${prototype.constructor.name}.${name}`, subscription, prototype });
    }
    return found;
  }
}

function validate({ label, subscription: { options } }: Found): void {
  const fail = (problem: string) => new MoEventDecoratorError(label, problem, '@MoEventSubscribe');
  if (options === null || typeof options !== 'object') throw fail('needs an options object with at least a queue');
  const known = new Set([
    'queue',
    'service',
    'objectType',
    'action',
    'delayed',
    'exchange',
    'queueType',
    'prefetch',
    'retries',
    'retryDelayMs',
  ]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw fail(`unknown option "${key}"; the options are ${[...known].join(', ')}`);
  }
  if (typeof options.queue !== 'string' || !QUEUE_NAME.test(options.queue)) {
    throw fail(
      `queue ${JSON.stringify(options.queue)} must be 1-249 letters, digits, "-", "_", "." or ":", not starting with "amq."`,
    );
  }
  // Either vocabulary's words bind: a consumer reads what the publisher sends, whatever this app publishes.
  const bad = findBadMoWord(options, 'any', true);
  if (bad) {
    throw fail(`${bad.name} ${JSON.stringify(bad.value)} is not ${describeAllowedWords(bad)}; leave it out for any`);
  }
  if (
    options.exchange !== undefined &&
    (typeof options.exchange !== 'string' || !EXCHANGE_NAME.test(options.exchange))
  ) {
    throw fail(`exchange ${JSON.stringify(options.exchange)} is not an exchange name`);
  }
  if (options.exchange !== undefined && options.delayed !== undefined) throw fail('give exchange or delayed, not both');
  if (options.delayed !== undefined && typeof options.delayed !== 'boolean')
    throw fail('delayed must be true or false');
  if (options.queueType !== undefined && options.queueType !== 'classic' && options.queueType !== 'quorum') {
    throw fail(`queueType ${JSON.stringify(options.queueType)} is not classic or quorum`);
  }
  if (
    options.prefetch !== undefined &&
    !(Number.isInteger(options.prefetch) && options.prefetch >= 1 && options.prefetch <= 65_535)
  ) {
    throw fail(`prefetch ${JSON.stringify(options.prefetch)} must be a whole number from 1 to 65535`);
  }
  if (
    options.retries !== undefined &&
    !(Number.isInteger(options.retries) && options.retries >= 0 && options.retries <= 100)
  ) {
    throw fail(`retries ${JSON.stringify(options.retries)} must be a whole number from 0 to 100`);
  }
  if (
    options.retryDelayMs !== undefined &&
    !(Number.isInteger(options.retryDelayMs) && options.retryDelayMs >= 0 && options.retryDelayMs <= MAX_RETRY_DELAY_MS)
  ) {
    throw fail(
      `retryDelayMs ${JSON.stringify(options.retryDelayMs)} must be a whole number of milliseconds from 0 to ${MAX_RETRY_DELAY_MS}`,
    );
  }
}
