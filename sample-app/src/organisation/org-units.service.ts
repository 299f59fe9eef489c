import { Injectable } from '@nestjs/common';
import { MoEvent } from 'nestjs-mo-amqp';
import { CreateOrgUnitDto, UpdateOrgUnitDto } from './dto/organisation.dto';
import { Change, OrgUnit } from './organisation.types';
import { Repository } from './repository';

const selectors = { uuid: (c: Change<OrgUnit>) => c.object.uuid, time: (c: Change<OrgUnit>) => c.validFrom };

@Injectable()
export class OrgUnitsService {
  readonly units = new Repository<OrgUnit>('organisation unit');

  @MoEvent('org_unit', 'org_unit', 'create', selectors)
  async create({ validFrom, ...fields }: CreateOrgUnitDto): Promise<Change<OrgUnit>> {
    if (fields.parentUuid) this.units.get(fields.parentUuid);
    return { object: this.units.insert(fields), validFrom };
  }

  @MoEvent('org_unit', 'org_unit', 'update', selectors)
  async update(uuid: string, { validFrom, ...changes }: UpdateOrgUnitDto): Promise<Change<OrgUnit>> {
    this.units.get(uuid);
    if (changes.parentUuid) this.units.get(changes.parentUuid);
    return { object: this.units.update(uuid, changes), validFrom };
  }

  @MoEvent('org_unit', 'org_unit', 'delete', selectors)
  async delete(uuid: string, validFrom?: string): Promise<Change<OrgUnit>> {
    return { object: this.units.delete(uuid), validFrom };
  }
}
