import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { MoAmqpHealthIndicator, MoEventsService } from 'nestjs-mo-amqp';

/**
 * `GET /health`: 200 while the broker is reachable (or AMQP is off) and, with the outbox on, its
 * database; 503 while not. `events` shows `MoEventsService.counters` (with the outbox on, `outboxed`
 * rows written in transactions and `relayed` ones the broker confirmed).
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly amqp: MoAmqpHealthIndicator,
    private readonly events: MoEventsService,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([
      () => this.amqp.isHealthy('amqp'),
      () => ({ events: { status: 'up' as const, ...this.events.counters } }),
    ]);
  }
}
