import { Logger, LoggerService } from '@nestjs/common';
import { redactSecrets } from '../config/redact';

// golevelup prints these when its own start-up wait is off, which is how this
// library runs it (MoEventsService waits instead): they would claim a connection
// that may not exist yet.
const MISLEADING = [/^Skipping connection health checks/, /^Successfully connected to RabbitMQ$/];

/**
 * golevelup's logger, minus the lines that are untrue under this library's
 * start-up, and with the given secrets masked in every line (golevelup logs
 * connection errors' stacks as they are).
 */
export class RabbitMqLogger implements LoggerService {
  private readonly logger = new Logger('RabbitMQ');

  constructor(private readonly secrets: readonly string[] = []) {}

  log(message: unknown, ...rest: unknown[]): void {
    if (typeof message === 'string' && MISLEADING.some((pattern) => pattern.test(message))) return;
    this.logger.log(...this.masked(message, rest));
  }

  error(message: unknown, ...rest: unknown[]): void {
    this.logger.error(...this.masked(message, rest));
  }

  warn(message: unknown, ...rest: unknown[]): void {
    this.logger.warn(...this.masked(message, rest));
  }

  debug(message: unknown, ...rest: unknown[]): void {
    this.logger.debug(...this.masked(message, rest));
  }

  verbose(message: unknown, ...rest: unknown[]): void {
    this.logger.verbose(...this.masked(message, rest));
  }

  private masked(message: unknown, rest: unknown[]): [unknown, ...unknown[]] {
    const mask = (value: unknown) => (typeof value === 'string' ? redactSecrets(value, this.secrets) : value);
    return [mask(message), ...rest.map(mask)];
  }
}
