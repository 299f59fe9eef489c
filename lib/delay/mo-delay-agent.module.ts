import { DynamicModule, Module } from '@nestjs/common';
import { loadMoDelayAgentOptionsFromEnv, resolveMoDelayAgentOptions } from './mo-delay-agent.config';
import {
  DELAY_AGENT_ASYNC_OPTIONS_TYPE,
  DELAY_AGENT_OPTIONS_TYPE,
  MO_DELAY_AGENT_MODULE_OPTIONS,
  MO_DELAY_AGENT_OPTIONS,
  MoDelayAgentConfigurableModule,
} from './mo-delay-agent.module-definition';
import { MoDelayAgentOptions } from './mo-delay-agent.options';
import { MoDelayAgent } from './mo-delay-agent.service';

/**
 * Runs the delay agent in a Nest app that imports `MoAmqpModule` (with AMQP
 * enabled): events from the events exchange reach the delayed exchange, identical,
 * once their `time` is due.
 *
 * ```ts
 * @Module({ imports: [ConfigModule.forRoot(), MoAmqpModule.forRootAsync(), MoDelayAgentModule.forRootAsync()] })
 * export class DelayAgentAppModule {}
 * ```
 */
@Module({})
export class MoDelayAgentModule extends MoDelayAgentConfigurableModule {
  static override forRoot(options: typeof DELAY_AGENT_OPTIONS_TYPE = {}): DynamicModule {
    return withAgent(super.forRoot(options));
  }

  /** With no arguments: from AMQP__DELAY_PREFIX, AMQP__DELAY_QUEUE_TYPE, AMQP__DELAY_PREFETCH, AMQP__DELAY_HOLD_MS. */
  static override forRootAsync(options: typeof DELAY_AGENT_ASYNC_OPTIONS_TYPE = {}): DynamicModule {
    const hasSource = options.useFactory || options.useClass || options.useExisting;
    return withAgent(
      super.forRootAsync(hasSource ? options : { ...options, useFactory: () => loadMoDelayAgentOptionsFromEnv() }),
    );
  }
}

function withAgent(definition: DynamicModule): DynamicModule {
  return {
    ...definition,
    providers: [
      ...(definition.providers ?? []),
      {
        provide: MO_DELAY_AGENT_OPTIONS,
        inject: [MO_DELAY_AGENT_MODULE_OPTIONS],
        useFactory: (options: MoDelayAgentOptions) => resolveMoDelayAgentOptions(options),
      },
      MoDelayAgent,
    ],
    exports: [MoDelayAgent],
  };
}
