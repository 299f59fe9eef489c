import { AmqpConnection } from '@golevelup/nestjs-rabbitmq';
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
import type { ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { MoEventDecoratorError } from '../errors/mo-event-decorator.error';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { explainExchangeRefusal } from '../runtime/exchanges';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { brokerUrlsOf } from '../config/mo-amqp-options.schema';
import { brokerVersionOf, classicOnClusterWarning } from '../runtime/broker-version';
import { GiveBacks } from '../runtime/give-backs';
import { deferGolevelupConsumers, letGolevelupRegisterHandlers } from '../runtime/amqp-internals';
import { declareConsumerQueues } from './consumer-queues';
import { changeSubscribeOptionsProblem, subscribeOptionsProblem } from './mo-event-subscribe.schema';
import { ConsumerBinding, ReadDelivery, setConsumerBinding } from './mo-event-consumer';
import { readMoDelivery } from '../events/mo-event-message';
import { readMoChangeDelivery } from '../events/mo-change';
import { checkRamqpReads } from '../events/ramqp-rules';
import { RetryPolicy, resolveRetryPolicy } from '../events/retry-policy';
import {
  FoundSubscription,
  MoEventSubscription,
  deadLetterQueueOf,
  decoratorOf,
  retryQueueOf,
  subscriptionsOn,
} from './subscriptions';

/**
 * Makes `@MoEventSubscribe` and `@MoChangeSubscribe` methods consume: checks their options at start-up,
 * points their golevelup subscription at the configured exchange, and declares
 * each queue with its dead-letter queue (again after every reconnect) before
 * golevelup starts consuming.
 */
@Injectable()
export class MoEventSubscriberExplorer implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('MoEventSubscribe');
  private found: FoundSubscription[] = [];
  /** The instances this application's bindings hang on, to take them off at shutdown. */
  private readonly bound: { instance: object; method: string | symbol }[] = [];
  private declarations: ChannelWrapper | undefined;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly runtime: MoAmqpRuntime,
    @Inject(MO_AMQP_OPTIONS) private readonly options: ResolvedMoAmqpOptions,
    @Optional() private readonly amqpConnection?: AmqpConnection,
  ) {}

  async onModuleInit(): Promise<void> {
    try {
      this.prepare();
    } catch (err) {
      await this.runtime.abortStart(err);
      throw err;
    }
  }

  /** Runs before golevelup's own bootstrap (this module is global), so the queues exist when it consumes. */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.options.enabled || !this.amqpConnection) return;
    letGolevelupRegisterHandlers();
    // Started without the broker: consumers attach when it answers, and start-up does not wait for them.
    const deferred = !this.runtime.connected;
    const declared = this.found.length > 0 ? this.declarationChannel(this.amqpConnection) : undefined;
    if (deferred) {
      // A refused declaration opens the gate too: the other handlers must not wait on it for ever.
      const refusedOrDone =
        declared &&
        new Promise<void>((open) => (declared.once('error', () => open()), void declared.waitForConnect().then(open)));
      const gate = Promise.all([this.runtime.whenConnected(), refusedOrDone]);
      const attachFailed = (err: unknown) =>
        this.logger.error(`A consumer handler could not attach once RabbitMQ answered: ${this.runtime.redact(err)}`);
      if (!deferGolevelupConsumers(this.amqpConnection, gate, attachFailed)) {
        this.logger.warn('golevelup handlers cannot be deferred in this installation: start-up waits for RabbitMQ');
      }
    }
    if (!declared) return;
    try {
      if (deferred) this.declareLater(declared);
      else await this.declareQueues(declared);
    } catch (err) {
      await this.runtime.abortStart(err);
      throw err;
    }
  }

  private prepare(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const [found] = subscriptionsOn(wrapper, this.scanner);
      if (found)
        throw new MoEventDecoratorError(
          found.label,
          'controllers cannot consume; put it on a provider',
          decoratorOf(found.subscription),
        );
    }
    const queues = new Map<string, string>();
    for (const wrapper of this.discovery.getProviders()) {
      for (const found of subscriptionsOn(wrapper, this.scanner)) {
        const decorator = decoratorOf(found.subscription);
        if (!wrapper.isDependencyTreeStatic()) {
          throw new MoEventDecoratorError(
            found.label,
            'request-scoped and transient providers cannot consume (golevelup binds one instance at start-up); make the provider a singleton',
            decorator,
          );
        }
        const problem =
          found.subscription.format === 'change'
            ? changeSubscribeOptionsProblem(found.subscription.options)
            : subscribeOptionsProblem(found.subscription.options);
        if (problem) throw new MoEventDecoratorError(found.label, problem, decorator);
        const { queue } = found.subscription.options;
        const other = queues.get(queue);
        if (other) {
          throw new MoEventDecoratorError(
            found.label,
            `queue "${queue}" is already consumed by ${other}; give each its own`,
            decorator,
          );
        }
        queues.set(queue, found.label);
        this.found.push(found);
      }
    }
    if (this.found.length > 0 && !this.options.enabled) {
      this.logger.log(
        `AMQP is disabled (ENABLE_AMQP is off): ${this.found.length} consumer handler(s) ` +
          '(@MoEventSubscribe, @MoChangeSubscribe) do not consume',
      );
    }
    if (!this.options.enabled) return;

    const configured = this.amqpConnection?.configuration.handlers ?? {};
    for (const { label, subscription, wrapper } of this.found) {
      const { options, configName, method } = subscription;
      if (!Object.prototype.hasOwnProperty.call(configured, configName)) {
        throw new MoEventDecoratorError(
          label,
          'its provider is made by a factory (useFactory), whose class MoAmqpModule cannot see when it configures ' +
            'golevelup, which would not consume for it; provide the class itself (useClass)',
          decoratorOf(subscription),
        );
      }
      const instance = wrapper.instance as object;
      setConsumerBinding(instance, method, this.bindingFor(label, subscription, resolveRetryPolicy(options)));
      this.bound.push({ instance, method });
    }
  }

  /** The channel that declares the consumer queues, on every new connection. */
  private declarationChannel(amqpConnection: AmqpConnection): ChannelWrapper {
    const subscriptions = this.found.map((f) => f.subscription);
    this.declarations = amqpConnection.managedConnection.createChannel({
      name: 'mo-amqp-declarations',
      confirm: false,
      setup: (channel: ConfirmChannel) =>
        declareConsumerQueues(
          channel,
          subscriptions,
          this.options,
          amqpConnection.managedConnection.connection,
          this.logger,
        ),
    });
    return this.declarations;
  }

  /** Started without the broker: what a refusal would have failed start-up with is logged when it answers. */
  private declareLater(declarations: ChannelWrapper): void {
    declarations.on('error', (err: Error) => this.logger.error(this.declarationRefused(err).message));
    declarations.once('connect', () => this.warnClassicOnCluster());
  }

  private async declareQueues(declarations: ChannelWrapper): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(this.declarationRefused(err));
      declarations.once('error', onError);
      declarations.waitForConnect().then(() => {
        declarations.removeListener('error', onError);
        resolve();
      }, reject);
    });
    // Later set-up failures (after a reconnect) are logged, not thrown.
    declarations.on('error', (err: Error) => this.logger.error(`Declaring the consumer queues failed: ${err.message}`));
    this.warnClassicOnCluster();
  }

  private declarationRefused(err: Error): MoAmqpConnectionError {
    const explained = explainExchangeRefusal(err, [this.options.delayedExchange], this.options);
    const hint = /ACCESS[-_]REFUSED/.test(err.message)
      ? 'The RabbitMQ user needs configure, write and read on each queue, its .dlq and its .retry, read on the exchange, ' +
        'and write on amq.default (dead-lettering, retries and dead-letter copies go through it).'
      : 'A queue that already exists with other arguments (type, dead-letter queue) must be deleted or renamed.';
    return new MoAmqpConnectionError(
      explained
        ? `RabbitMQ refused the exchange of a delayed @MoEventSubscribe: ${explained}`
        : `RabbitMQ refused to declare the consumer queues (@MoEventSubscribe, @MoChangeSubscribe): ${err.message}. ${hint}`,
      'RabbitMQ',
    );
  }

  private warnClassicOnCluster(): void {
    const subscriptions = this.found.map((f) => f.subscription);
    const amqpConnection = this.amqpConnection as AmqpConnection;
    const classic = subscriptions.filter(({ options }) => options.queueType !== 'quorum').map((s) => s.options.queue);
    const model = amqpConnection.managedConnection.connection;
    const warning =
      classic.length > 0 && model
        ? classicOnClusterWarning(
            brokerVersionOf(model),
            brokerUrlsOf(this.options).length,
            `The consumer queues ${classic.map((q) => `"${q}"`).join(', ')}`,
            "@MoEventSubscribe({ queueType: 'quorum' })",
          )
        : undefined;
    if (warning) this.logger.warn(warning);
  }

  async onApplicationShutdown(): Promise<void> {
    for (const { instance, method } of this.bound) setConsumerBinding(instance, method, undefined);
    this.bound.length = 0;
    await this.declarations?.close().catch(() => undefined);
  }

  private bindingFor(
    label: string,
    subscription: MoEventSubscription,
    { retries, retryDelayMs }: RetryPolicy,
  ): ConsumerBinding {
    const { queue } = subscription.options;
    return {
      label,
      queue,
      deadLetterQueue: deadLetterQueueOf(queue),
      retryQueue: retryQueueOf(queue),
      retries,
      retryDelayMs,
      read: this.readerFor(subscription.format, queue),
      logger: this.logger,
      forward: (exchange, routingKey, content, properties) =>
        this.runtime.forward(exchange, routingKey, content, properties),
      count: (what) => this.runtime.count(what),
      giveBacks: new GiveBacks(),
    };
  }

  /** How a consumer of `queue` reads a delivery: its own copies' headers believed, nobody else's. */
  private readerFor(format: MoEventSubscription['format'], queue: string): ConsumerBinding['read'] {
    if (format === 'change') return (content, message) => readMoChangeDelivery(content, message, { queue });
    const { timeZone, vocabulary } = this.options;
    return (content, message): ReadDelivery => {
      const delivery = readMoDelivery(content, message, timeZone, { queue });
      // Beside ramqp consumers, what they would requeue for ever is dead-lettered here too.
      checkRamqpReads(vocabulary, content, delivery.event);
      return delivery;
    };
  }
}
