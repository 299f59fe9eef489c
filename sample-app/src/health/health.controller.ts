import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { MoAmqpHealthIndicator } from 'nestjs-mo-amqp';

/** `GET /health`: 200 while the broker is reachable (or AMQP is off), 503 while it is not. */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly amqp: MoAmqpHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.amqp.isHealthy('amqp')]);
  }
}
