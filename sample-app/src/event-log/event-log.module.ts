import { Module } from '@nestjs/common';
import { EventLogConsumer } from './event-log.consumer';

@Module({ providers: [EventLogConsumer] })
export class EventLogModule {}
