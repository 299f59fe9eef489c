import { LoggerService } from '@nestjs/common';

/** Keeps every log line of an app, so a spec can assert on what was (not) logged. */
export class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];

  private add(level: string, message: unknown, rest: unknown[]): void {
    const parts = [message, ...rest].map((part) =>
      part instanceof Error ? `${part.message}\n${part.stack}` : typeof part === 'string' ? part : JSON.stringify(part),
    );
    this.lines.push(`${level} ${parts.join(' ')}`);
  }

  log(message: unknown, ...rest: unknown[]): void {
    this.add('LOG', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.add('ERROR', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.add('WARN', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.add('DEBUG', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.add('VERBOSE', message, rest);
  }

  get text(): string {
    return this.lines.join('\n');
  }
}
