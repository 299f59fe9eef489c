import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { MoAmqpModule } from 'nestjs-mo-amqp';
import { EventLogModule } from './event-log/event-log.module';
import { OrganisationModule } from './organisation/organisation.module';

@Module({
  imports: [ConfigModule.forRoot(), MoAmqpModule.forRootAsync(), OrganisationModule, EventLogModule],
})
export class AppModule {}
