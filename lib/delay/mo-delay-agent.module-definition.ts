import { ConfigurableModuleBuilder } from '@nestjs/common';
import { MoDelayAgentOptions } from './mo-delay-agent.options';

export const {
  ConfigurableModuleClass: MoDelayAgentConfigurableModule,
  MODULE_OPTIONS_TOKEN: MO_DELAY_AGENT_MODULE_OPTIONS,
  OPTIONS_TYPE: DELAY_AGENT_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: DELAY_AGENT_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<MoDelayAgentOptions>({ moduleName: 'MoDelayAgent' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createMoDelayAgentOptions')
  .build();

/** Injection token of the validated, defaulted agent options. */
export const MO_DELAY_AGENT_OPTIONS = Symbol.for('mo-amqp:delay-agent-options');
