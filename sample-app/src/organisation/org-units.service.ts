import { Transactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { Injectable } from '@nestjs/common';
import { MoEvent } from 'nestjs-mo-amqp';
import { CreateOrgUnitDto, UpdateOrgUnitDto } from './dto/organisation.dto';
import { OrgUnitEntity } from './organisation.entities';
import { Change, OrgUnit } from './organisation.types';
import { Table } from './table';

const selectors = { uuid: (c: Change<OrgUnit>) => c.object.uuid, time: (c: Change<OrgUnit>) => c.validFrom };

@Injectable()
export class OrgUnitsService {
  readonly units: Table<OrgUnit>;

  constructor(txHost: TransactionHost<TransactionalAdapterTypeOrm>) {
    this.units = new Table(txHost, OrgUnitEntity, 'organisation unit');
  }

  @Transactional()
  @MoEvent('org_unit', 'org_unit', 'create', selectors)
  async create({ validFrom, ...fields }: CreateOrgUnitDto): Promise<Change<OrgUnit>> {
    if (fields.parentUuid) await this.units.get(fields.parentUuid);
    return { object: await this.units.insert(fields), validFrom };
  }

  @Transactional()
  @MoEvent('org_unit', 'org_unit', 'update', selectors)
  async update(uuid: string, { validFrom, ...changes }: UpdateOrgUnitDto): Promise<Change<OrgUnit>> {
    await this.units.get(uuid);
    if (changes.parentUuid) await this.units.get(changes.parentUuid);
    return { object: await this.units.update(uuid, changes), validFrom };
  }

  /** Refused at COMMIT (409) while a unit, engagement or address refers to the unit. */
  @Transactional()
  @MoEvent('org_unit', 'org_unit', 'delete', selectors)
  async delete(uuid: string, validFrom?: string): Promise<Change<OrgUnit>> {
    return { object: await this.units.delete(uuid), validFrom };
  }
}
