import { RabbitMQConfig, RabbitMQModule } from '@golevelup/nestjs-rabbitmq';
import { DynamicModule, Logger, Module } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, MetadataScanner } from '@nestjs/core';
import { ConfigModule } from '@nestjs/config';
import { MoAmqpModuleOptions, ResolvedMoAmqpOptions } from './config/mo-amqp-options.interface';
import { brokerUrlsOf, resolveMoAmqpOptions } from './config/mo-amqp-options.schema';
import { moAmqpConfig } from './config/mo-amqp.config';
import { tlsConnectionOptions, tlsSecrets } from './config/tls';
import { MO_AMQP_OPTIONS } from './mo-amqp.constants';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableModuleClass,
  MO_AMQP_MODULE_OPTIONS,
  OPTIONS_TYPE,
} from './mo-amqp.module-definition';
import { MoAmqpHealthIndicator } from './health/mo-amqp-health.indicator';
import { MoEventExplorer } from './publishing/mo-event.explorer';
import { MoEventsService } from './publishing/mo-events.service';
import { MoAmqpRuntime } from './runtime/mo-amqp-runtime';
import { MoEventSubscriberExplorer } from './subscribing/mo-event-subscriber.explorer';
import { MoEventSubscription, discoverSubscriptions, golevelupSubscriberConfig } from './subscribing/subscriptions';
import { RabbitMqLogger } from './runtime/rabbitmq-logger';
import { secretsOf } from './config/redact';
import { MoOutboxRelay } from './outbox/outbox-relay';
import { MoOutboxWriter } from './outbox/transaction-writer';

/** Holds the validated options, so both this module and its RabbitMQModule can inject them. */
@Module({})
class MoAmqpOptionsModule {}

/**
 * OS2mo AMQP events for a Nest application. Owns the application's one
 * golevelup `RabbitMQModule` and exports it, so `@RabbitSubscribe` handlers and
 * `AmqpConnection` work without a second RabbitMQ set-up.
 *
 * ```ts
 * @Module({ imports: [ConfigModule.forRoot(), MoAmqpModule.forRootAsync()] })
 * export class AppModule {}
 * ```
 */
@Module({})
export class MoAmqpModule extends ConfigurableModuleClass {
  /** Configure in code; options left out take their defaults (AMQP stays off unless `enabled: true`). */
  static override forRoot(options: typeof OPTIONS_TYPE = {}): DynamicModule {
    return assemble(super.forRoot(options));
  }

  /**
   * Configure from a factory, class or existing provider; with no arguments,
   * from the environment (`ENABLE_AMQP`, `AMQP__*`) through `@nestjs/config`.
   */
  static override forRootAsync(options: typeof ASYNC_OPTIONS_TYPE = {}): DynamicModule {
    const hasSource = options.useFactory || options.useClass || options.useExisting;
    return assemble(
      super.forRootAsync(
        hasSource
          ? options
          : {
              ...options,
              imports: [...(options.imports ?? []), ConfigModule.forFeature(moAmqpConfig)],
              inject: [moAmqpConfig.KEY],
              useFactory: (fromEnv: MoAmqpModuleOptions) => fromEnv,
            },
      ),
    );
  }
}

function assemble(definition: DynamicModule): DynamicModule {
  const optionsModule: DynamicModule = {
    module: MoAmqpOptionsModule,
    imports: definition.imports ?? [],
    providers: [
      ...(definition.providers ?? []),
      {
        provide: MO_AMQP_OPTIONS,
        inject: [MO_AMQP_MODULE_OPTIONS],
        useFactory: (options: MoAmqpModuleOptions) => resolveMoAmqpOptions(options),
      },
    ],
    exports: [MO_AMQP_OPTIONS],
  };
  const rabbitMqModule = RabbitMQModule.forRootAsync({
    imports: [optionsModule, DiscoveryModule],
    inject: [MO_AMQP_OPTIONS, DiscoveryService, MetadataScanner],
    // The application's modules are scanned by now: its @MoEventSubscribe methods are known.
    // golevelup's type omits it, but an undefined config is its documented "no connection".
    useFactory: (options: ResolvedMoAmqpOptions, discovery: DiscoveryService, scanner: MetadataScanner) =>
      toRabbitMqConfig(options, discoverSubscriptions(discovery, scanner)) as RabbitMQConfig,
  });
  return {
    ...definition,
    imports: [optionsModule, rabbitMqModule, DiscoveryModule],
    providers: [
      MoAmqpRuntime,
      MoOutboxWriter,
      MoOutboxRelay,
      MoEventsService,
      MoEventExplorer,
      MoEventSubscriberExplorer,
      MoAmqpHealthIndicator,
    ],
    exports: [MoEventsService, MoAmqpRuntime, MoAmqpHealthIndicator, optionsModule, rabbitMqModule],
  };
}

/** Disabled means no config at all: golevelup then opens no connection and registers no handler. */
function toRabbitMqConfig(
  options: ResolvedMoAmqpOptions,
  subscriptions: readonly MoEventSubscription[],
): RabbitMQConfig | undefined {
  if (!options.enabled) return undefined;
  return {
    uri: brokerUrlsOf(options),
    // MoEventsService waits for the broker itself, with an error that names it.
    connectionInitOptions: { wait: false },
    connectionManagerOptions: {
      reconnectTimeInSeconds: 2,
      // Bounds each attempt, or a host that accepts TCP but never answers would hang it forever.
      // With amqps://, the CA, client certificate and login that AMQP__TLS_* and AMQP__AUTH name
      // (files read and checked now: a bad one fails start-up with MoAmqpConfigError).
      connectionOptions: {
        timeout: options.connectTimeoutMs,
        ...tlsConnectionOptions(options, (warning) => new Logger('MoAmqpModule').warn(warning)),
      },
    },
    logger: new RabbitMqLogger([...secretsOf(brokerUrlsOf(options)), ...tlsSecrets(options)]),
    // The channels and exchanges the application's @MoEventSubscribe handlers ask for.
    ...golevelupSubscriberConfig(options, subscriptions),
  };
}
