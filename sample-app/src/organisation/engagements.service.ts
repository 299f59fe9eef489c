import { Injectable } from '@nestjs/common';
import { MoEvent, MoEventSelectors } from 'nestjs-mo-amqp';
import { CreateEngagementDto, UpdateEngagementDto } from './dto/organisation.dto';
import { EmployeesService } from './employees.service';
import { OrgUnitsService } from './org-units.service';
import { Change, Engagement } from './organisation.types';
import { Repository } from './repository';

// As in OS2mo, a change to an engagement concerns two parties: the person and the unit.
// Each gets its own message, with the engagement itself as object_uuid.
const person: MoEventSelectors<Change<Engagement>> = {
  uuid: (c) => c.object.employeeUuid,
  time: (c) => c.validFrom,
  objectUuid: (c) => c.object.uuid,
};
const unit: MoEventSelectors<Change<Engagement>> = { ...person, uuid: (c) => c.object.orgUnitUuid };

@Injectable()
export class EngagementsService {
  readonly engagements = new Repository<Engagement>('engagement');

  constructor(
    private readonly employees: EmployeesService,
    private readonly units: OrgUnitsService,
  ) {}

  @MoEvent('employee', 'engagement', 'create', person)
  @MoEvent('org_unit', 'engagement', 'create', unit)
  async create({ validFrom, ...fields }: CreateEngagementDto): Promise<Change<Engagement>> {
    this.employees.employees.get(fields.employeeUuid);
    this.units.units.get(fields.orgUnitUuid);
    return { object: this.engagements.insert(fields), validFrom };
  }

  @MoEvent('employee', 'engagement', 'update', person)
  @MoEvent('org_unit', 'engagement', 'update', unit)
  async update(uuid: string, { validFrom, ...changes }: UpdateEngagementDto): Promise<Change<Engagement>> {
    this.engagements.get(uuid);
    if (changes.employeeUuid) this.employees.employees.get(changes.employeeUuid);
    if (changes.orgUnitUuid) this.units.units.get(changes.orgUnitUuid);
    return { object: this.engagements.update(uuid, changes), validFrom };
  }

  @MoEvent('employee', 'engagement', 'delete', person)
  @MoEvent('org_unit', 'engagement', 'delete', unit)
  async delete(uuid: string, validFrom?: string): Promise<Change<Engagement>> {
    return { object: this.engagements.delete(uuid), validFrom };
  }
}
