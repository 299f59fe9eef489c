export { MoAmqpModule } from './mo-amqp.module';
export { MO_AMQP_OPTIONS } from './mo-amqp.constants';
export type { MoAmqpModuleExtras, MoAmqpOptionsFactory } from './mo-amqp.module-definition';
export type { MoAmqpModuleOptions, ResolvedMoAmqpOptions } from './config/mo-amqp-options.interface';
export { moAmqpConfig } from './config/mo-amqp.config';
export { loadMoAmqpOptionsFromEnv } from './config/mo-amqp-env';
export { MoEventsService } from './publishing/mo-events.service';
export type { MoPublishResult } from './publishing/mo-publish-result';
export type { MoEventCounters, MoSpoolStats } from './runtime/mo-amqp-stats';
export { MoEvent } from './publishing/mo-event.decorator';
export type { MoEventMethodDecorator, MoEventSelectors } from './publishing/mo-event.decorator';
export type { MoEventOptions } from './events/mo-event';
export type {
  MoAction,
  MoActionOf,
  MoChangeObjectType,
  MoObjectType,
  MoObjectTypeOf,
  MoPublishVocabulary,
  MoRoutingKey,
  MoService,
  MoVocabulary,
  MoVocabularyRegister,
} from './events/vocabulary';
export {
  MO_ACTIONS,
  MO_CHANGE_OBJECT_TYPES,
  MO_OBJECT_TYPES,
  MO_OS2MO_ACTIONS,
  MO_OS2MO_OBJECT_TYPES,
  MO_SEED_ACTIONS,
  MO_SEED_OBJECT_TYPES,
  MO_SERVICES,
  MO_VOCABULARIES,
  isMoAction,
  isMoChangeObjectType,
  isMoObjectType,
  isMoService,
} from './events/vocabulary';
export type { MoRoutingKeyParts } from './events/routing-key';
export { allMoRoutingKeys, moRoutingKey, parseMoRoutingKey } from './events/routing-key';
export type { ParsedMoTime } from './events/mo-time';
export { formatMoTime, normalizeMoTime, parseMoTime } from './events/mo-time';
export { IsMoTime } from './events/is-mo-time.decorator';
export { MoEventValidationError } from './errors/mo-event-validation.error';
export type { MoPublishFailure } from './errors/mo-publish.error';
export { MoPublishError } from './errors/mo-publish.error';
export type { MoAmqpConfigProblem } from './errors/mo-amqp-config.error';
export { MoAmqpConfigError } from './errors/mo-amqp-config.error';
export { MoAmqpConnectionError } from './errors/mo-amqp-connection.error';
export { MoEventDecoratorError } from './errors/mo-event-decorator.error';
export { MoEventParseError } from './errors/mo-event-parse.error';
export { outboxMigrationSql } from './outbox/outbox-sql';
export { MoChangeSubscribe, MoEventSubscribe } from './subscribing/mo-event-subscribe.decorator';
export type {
  MoChangeSubscribeOptions,
  MoConsumerQueueOptions,
  MoEventSubscribeOptions,
} from './subscribing/mo-event-subscribe.options';
export { parseMoEvent } from './events/mo-event-message';
export type { MoEventMessage } from './events/mo-event-message';
export { parseMoChange } from './events/mo-change';
export type { MoChangeMessage } from './events/mo-change';
export {
  MO_HEADER_ATTEMPT,
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MO_HEADER_REQUEUED,
  MO_HEADER_ROUTING_KEY,
} from './mo-amqp.constants';
export { MoDelayAgentModule } from './delay/mo-delay-agent.module';
export { MoDelayAgent } from './delay/mo-delay-agent.service';
export type { MoDelayAgentStats } from './delay/mo-delay-agent.stats';
export type { MoDelayAgentOptions, ResolvedMoDelayAgentOptions } from './delay/mo-delay-agent.options';
export { loadMoDelayAgentOptionsFromEnv } from './delay/mo-delay-agent.config';
export { MoAmqpHealthIndicator } from './health/mo-amqp-health.indicator';
export type { MoAmqpHealthResult } from './health/mo-amqp-health.indicator';
// golevelup's own, for plain handlers beside @MoEventSubscribe (docs/consuming.md): one install line,
// and the app's one copy of it (a peer dependency: a second copy's AmqpConnection is another injection token).
export { AmqpConnection, Nack, RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
export type { ConsumeMessage } from 'amqplib';
