import { Transactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { BadRequestException, Injectable } from '@nestjs/common';
import { MoEvent, MoEventSelectors } from 'nestjs-mo-amqp';
import { CreateAddressDto, UpdateAddressDto } from './dto/organisation.dto';
import { EmployeesService } from './employees.service';
import { OrgUnitsService } from './org-units.service';
import { AddressEntity } from './organisation.entities';
import { Address, Change } from './organisation.types';
import { Table } from './table';

// An address belongs to a person or to a unit: the selector for the other
// service returns no UUID, so only the owner's message is sent.
const person: MoEventSelectors<Change<Address>> = {
  uuid: (c) => (c.object.employeeUuid ? [c.object.employeeUuid] : []),
  time: (c) => c.validFrom,
  objectUuid: (c) => c.object.uuid,
};
const unit: MoEventSelectors<Change<Address>> = {
  ...person,
  uuid: (c) => (c.object.orgUnitUuid ? [c.object.orgUnitUuid] : []),
};

@Injectable()
export class AddressesService {
  readonly addresses: Table<Address>;

  constructor(
    txHost: TransactionHost<TransactionalAdapterTypeOrm>,
    private readonly employees: EmployeesService,
    private readonly units: OrgUnitsService,
  ) {
    this.addresses = new Table(txHost, AddressEntity, 'address');
  }

  @Transactional()
  @MoEvent('employee', 'address', 'create', person)
  @MoEvent('org_unit', 'address', 'create', unit)
  async create({ validFrom, ...fields }: CreateAddressDto): Promise<Change<Address>> {
    if (!fields.employeeUuid === !fields.orgUnitUuid) {
      throw new BadRequestException('an address belongs to exactly one of employeeUuid and orgUnitUuid');
    }
    if (fields.employeeUuid) await this.employees.employees.get(fields.employeeUuid);
    if (fields.orgUnitUuid) await this.units.units.get(fields.orgUnitUuid);
    return { object: await this.addresses.insert(fields), validFrom };
  }

  @Transactional()
  @MoEvent('employee', 'address', 'update', person)
  @MoEvent('org_unit', 'address', 'update', unit)
  async update(uuid: string, { validFrom, ...changes }: UpdateAddressDto): Promise<Change<Address>> {
    return { object: await this.addresses.update(uuid, changes), validFrom };
  }

  @Transactional()
  @MoEvent('employee', 'address', 'delete', person)
  @MoEvent('org_unit', 'address', 'delete', unit)
  async delete(uuid: string, validFrom?: string): Promise<Change<Address>> {
    return { object: await this.addresses.delete(uuid), validFrom };
  }
}
