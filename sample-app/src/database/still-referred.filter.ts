import { ArgumentsHost, Catch, ConflictException } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { QueryFailedError } from 'typeorm';

/**
 * The sample's foreign keys are deferred: PostgreSQL checks them at COMMIT. So
 * deleting an employee or a unit that something still refers to fails there,
 * after the request's events were written to the outbox in the same
 * transaction, and they are rolled back with it: 409, and nothing published.
 * Any other database error stays a 500.
 */
@Catch(QueryFailedError)
export class StillReferredFilter extends BaseExceptionFilter {
  override catch(err: QueryFailedError, host: ArgumentsHost): void {
    const { code, detail } = err.driverError as { code?: string; detail?: string };
    super.catch(code === '23503' ? new ConflictException(detail ?? err.message) : err, host);
  }
}
