import { BadRequestException, Injectable } from '@nestjs/common';
import { MoEvent, MoEventSelectors } from 'nestjs-mo-amqp';
import { CreateAddressDto, UpdateAddressDto } from './dto/organisation.dto';
import { EmployeesService } from './employees.service';
import { OrgUnitsService } from './org-units.service';
import { Address, Change } from './organisation.types';
import { Repository } from './repository';

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
  readonly addresses = new Repository<Address>('address');

  constructor(
    private readonly employees: EmployeesService,
    private readonly units: OrgUnitsService,
  ) {}

  @MoEvent('employee', 'address', 'create', person)
  @MoEvent('org_unit', 'address', 'create', unit)
  async create({ validFrom, ...fields }: CreateAddressDto): Promise<Change<Address>> {
    if (!fields.employeeUuid === !fields.orgUnitUuid) {
      throw new BadRequestException('an address belongs to exactly one of employeeUuid and orgUnitUuid');
    }
    if (fields.employeeUuid) this.employees.employees.get(fields.employeeUuid);
    if (fields.orgUnitUuid) this.units.units.get(fields.orgUnitUuid);
    return { object: this.addresses.insert(fields), validFrom };
  }

  @MoEvent('employee', 'address', 'update', person)
  @MoEvent('org_unit', 'address', 'update', unit)
  async update(uuid: string, { validFrom, ...changes }: UpdateAddressDto): Promise<Change<Address>> {
    return { object: this.addresses.update(uuid, changes), validFrom };
  }

  @MoEvent('employee', 'address', 'delete', person)
  @MoEvent('org_unit', 'address', 'delete', unit)
  async delete(uuid: string, validFrom?: string): Promise<Change<Address>> {
    return { object: this.addresses.delete(uuid), validFrom };
  }
}
