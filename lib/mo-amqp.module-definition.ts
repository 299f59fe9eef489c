import { ConfigurableModuleBuilder } from '@nestjs/common';
import { MoAmqpModuleOptions } from './config/mo-amqp-options.interface';

/** For `forRootAsync({ useClass })`: a provider that builds the options. */
export interface MoAmqpOptionsFactory {
  createMoAmqpOptions(): MoAmqpModuleOptions | Promise<MoAmqpModuleOptions>;
}

export interface MoAmqpModuleExtras {
  /** Make `MoEventsService` and `AmqpConnection` injectable everywhere. Default true. */
  isGlobal?: boolean;
}

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: MO_AMQP_MODULE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<MoAmqpModuleOptions>({ moduleName: 'MoAmqp' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createMoAmqpOptions')
  .setExtras<MoAmqpModuleExtras>({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
  }))
  .build();
