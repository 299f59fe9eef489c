import { Transactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { Injectable } from '@nestjs/common';
import { MoEvent } from 'nestjs-mo-amqp';
import { CreateEmployeeDto, UpdateEmployeeDto } from './dto/organisation.dto';
import { EmployeeEntity } from './organisation.entities';
import { Change, Employee } from './organisation.types';
import { Table } from './table';

const selectors = { uuid: (c: Change<Employee>) => c.object.uuid, time: (c: Change<Employee>) => c.validFrom };

// In every service, @Transactional() is above @MoEvent: the event is produced inside the transaction,
// so with the outbox on (AMQP__OUTBOX=postgres) it is a row of that transaction, committed or rolled
// back with the change, and relayed after the commit. With the outbox off it is published directly
// once the method (its commit included) has resolved, and a failed commit publishes nothing; but a
// crash between the commit and the publish (or the spool's fsync) loses it.
@Injectable()
export class EmployeesService {
  readonly employees: Table<Employee>;

  constructor(txHost: TransactionHost<TransactionalAdapterTypeOrm>) {
    this.employees = new Table(txHost, EmployeeEntity, 'employee');
  }

  @Transactional()
  @MoEvent('employee', 'employee', 'create', selectors)
  async create({ validFrom, ...fields }: CreateEmployeeDto): Promise<Change<Employee>> {
    return { object: await this.employees.insert(fields), validFrom };
  }

  @Transactional()
  @MoEvent('employee', 'employee', 'update', selectors)
  async update(uuid: string, { validFrom, ...changes }: UpdateEmployeeDto): Promise<Change<Employee>> {
    return { object: await this.employees.update(uuid, changes), validFrom };
  }

  /** Refused at COMMIT (409) while an engagement or address refers to the employee. */
  @Transactional()
  @MoEvent('employee', 'employee', 'delete', selectors)
  async delete(uuid: string, validFrom?: string): Promise<Change<Employee>> {
    return { object: await this.employees.delete(uuid), validFrom };
  }
}
