import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { MoAmqpModule } from 'nestjs-mo-amqp';
import { EventsController } from './events.controller';

@Module({
  imports: [ConfigModule.forRoot(), MoAmqpModule.forRootAsync()],
  controllers: [EventsController],
})
export class AppModule {}
