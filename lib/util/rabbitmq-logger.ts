import { Logger, LoggerService } from '@nestjs/common';

// golevelup prints these when its own start-up wait is off, which is how this
// library runs it (MoEventsService waits instead): they would claim a connection
// that may not exist yet.
const MISLEADING = [/^Skipping connection health checks/, /^Successfully connected to RabbitMQ$/];

/** golevelup's logger, minus the lines that are untrue under this library's start-up. */
export class RabbitMqLogger implements LoggerService {
  private readonly logger = new Logger('RabbitMQ');

  log(message: unknown, ...rest: unknown[]): void {
    if (typeof message === 'string' && MISLEADING.some((pattern) => pattern.test(message))) return;
    this.logger.log(message, ...rest);
  }

  error(message: unknown, ...rest: unknown[]): void {
    this.logger.error(message, ...rest);
  }

  warn(message: unknown, ...rest: unknown[]): void {
    this.logger.warn(message, ...rest);
  }

  debug(message: unknown, ...rest: unknown[]): void {
    this.logger.debug(message, ...rest);
  }

  verbose(message: unknown, ...rest: unknown[]): void {
    this.logger.verbose(message, ...rest);
  }
}
