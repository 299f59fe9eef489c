import { RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Injectable, Logger } from '@nestjs/common';
import type { ConsumeMessage } from 'amqplib';

/**
 * What the seed's Python example does, as a plain golevelup handler: print
 * `[routing_key] body` for every MO event, and the trace it belongs to. Its own exclusive queue, gone when
 * the app stops. Decorator arguments are fixed when this file loads, so the
 * exchange comes from the environment directly (not from a .env file).
 */
@Injectable()
export class EventLogConsumer {
  private readonly logger = new Logger('MoEventLog');

  @RabbitSubscribe({
    exchange: process.env.AMQP__EXCHANGE || 'os2mo',
    routingKey: '#',
    queueOptions: { exclusive: true, autoDelete: true },
    allowNonJsonMessages: true,
    deserializer: (content: Buffer) => content.toString('utf8'),
  })
  log(body: string, message: ConsumeMessage): void {
    // The trace of the request that produced it (nestjs-mo-amqp writes `traceparent` when tracing is on).
    const traceparent = message.properties.headers?.traceparent;
    const traceId = typeof traceparent === 'string' ? /^00-([0-9a-f]{32})-/.exec(traceparent)?.[1] : undefined;
    this.logger.log(`[${message.fields.routingKey}] ${body}${traceId ? ` trace ${traceId}` : ''}`);
  }
}
