import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { TerminusModule } from '@nestjs/terminus';
import { MoAmqpModule } from 'nestjs-mo-amqp';
import { DatabaseModule } from './database/database.module';
import { EventLogModule } from './event-log/event-log.module';
import { HealthController } from './health/health.controller';
import { OrganisationModule } from './organisation/organisation.module';

@Module({
  imports: [
    ConfigModule.forRoot(),
    MoAmqpModule.forRootAsync(),
    DatabaseModule,
    TerminusModule,
    OrganisationModule,
    EventLogModule,
  ],
  controllers: [HealthController],
})
export class AppModule {}
