import { Transactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { Injectable } from '@nestjs/common';
import { MoEvent, MoEventSelectors } from 'nestjs-mo-amqp';
import { CreateEngagementDto, UpdateEngagementDto } from './dto/organisation.dto';
import { EmployeesService } from './employees.service';
import { OrgUnitsService } from './org-units.service';
import { EngagementEntity } from './organisation.entities';
import { Change, Engagement } from './organisation.types';
import { Table } from './table';

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
  readonly engagements: Table<Engagement>;

  constructor(
    txHost: TransactionHost<TransactionalAdapterTypeOrm>,
    private readonly employees: EmployeesService,
    private readonly units: OrgUnitsService,
  ) {
    this.engagements = new Table(txHost, EngagementEntity, 'engagement');
  }

  @Transactional()
  @MoEvent('employee', 'engagement', 'create', person)
  @MoEvent('org_unit', 'engagement', 'create', unit)
  async create({ validFrom, ...fields }: CreateEngagementDto): Promise<Change<Engagement>> {
    await this.employees.employees.get(fields.employeeUuid);
    await this.units.units.get(fields.orgUnitUuid);
    return { object: await this.engagements.insert(fields), validFrom };
  }

  @Transactional()
  @MoEvent('employee', 'engagement', 'update', person)
  @MoEvent('org_unit', 'engagement', 'update', unit)
  async update(uuid: string, { validFrom, ...changes }: UpdateEngagementDto): Promise<Change<Engagement>> {
    await this.engagements.get(uuid);
    if (changes.employeeUuid) await this.employees.employees.get(changes.employeeUuid);
    if (changes.orgUnitUuid) await this.units.units.get(changes.orgUnitUuid);
    return { object: await this.engagements.update(uuid, changes), validFrom };
  }

  @Transactional()
  @MoEvent('employee', 'engagement', 'delete', person)
  @MoEvent('org_unit', 'engagement', 'delete', unit)
  async delete(uuid: string, validFrom?: string): Promise<Change<Engagement>> {
    return { object: await this.engagements.delete(uuid), validFrom };
  }
}
