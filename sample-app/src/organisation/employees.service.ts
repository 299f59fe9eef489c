import { Injectable } from '@nestjs/common';
import { MoEvent } from 'nestjs-mo-amqp';
import { CreateEmployeeDto, UpdateEmployeeDto } from './dto/organisation.dto';
import { Change, Employee } from './organisation.types';
import { Repository } from './repository';

const selectors = { uuid: (c: Change<Employee>) => c.object.uuid, time: (c: Change<Employee>) => c.validFrom };

@Injectable()
export class EmployeesService {
  readonly employees = new Repository<Employee>('employee');

  @MoEvent('employee', 'employee', 'create', selectors)
  async create({ validFrom, ...fields }: CreateEmployeeDto): Promise<Change<Employee>> {
    return { object: this.employees.insert(fields), validFrom };
  }

  @MoEvent('employee', 'employee', 'update', selectors)
  async update(uuid: string, { validFrom, ...changes }: UpdateEmployeeDto): Promise<Change<Employee>> {
    return { object: this.employees.update(uuid, changes), validFrom };
  }

  @MoEvent('employee', 'employee', 'delete', selectors)
  async delete(uuid: string, validFrom?: string): Promise<Change<Employee>> {
    return { object: this.employees.delete(uuid), validFrom };
  }
}
