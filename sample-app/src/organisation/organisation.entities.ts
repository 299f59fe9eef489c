import { Column, Entity, ForeignKey, PrimaryColumn } from 'typeorm';

// The tables of organisation.types.ts. Their foreign keys are checked at COMMIT (deferred), so a
// delete that leaves something referring to a removed row fails after its events were written to the
// outbox, and the transaction takes them back (see database/still-referred.filter.ts).
const DEFERRED = { deferrable: 'INITIALLY DEFERRED' } as const;

@Entity('employee')
export class EmployeeEntity {
  @PrimaryColumn('uuid') uuid!: string;
  @Column('text') name!: string;
}

@Entity('org_unit')
export class OrgUnitEntity {
  @PrimaryColumn('uuid') uuid!: string;
  @Column('text') name!: string;

  @Column('uuid', { name: 'parent_uuid', nullable: true })
  @ForeignKey(() => OrgUnitEntity, DEFERRED)
  parentUuid!: string | null;
}

@Entity('engagement')
export class EngagementEntity {
  @PrimaryColumn('uuid') uuid!: string;

  @Column('uuid', { name: 'employee_uuid' })
  @ForeignKey(() => EmployeeEntity, DEFERRED)
  employeeUuid!: string;

  @Column('uuid', { name: 'org_unit_uuid' })
  @ForeignKey(() => OrgUnitEntity, DEFERRED)
  orgUnitUuid!: string;

  @Column('text', { name: 'job_title' }) jobTitle!: string;
}

@Entity('address')
export class AddressEntity {
  @PrimaryColumn('uuid') uuid!: string;

  @Column('uuid', { name: 'employee_uuid', nullable: true })
  @ForeignKey(() => EmployeeEntity, DEFERRED)
  employeeUuid!: string | null;

  @Column('uuid', { name: 'org_unit_uuid', nullable: true })
  @ForeignKey(() => OrgUnitEntity, DEFERRED)
  orgUnitUuid!: string | null;

  @Column('text', { name: 'address_type' }) addressType!: 'email' | 'phone' | 'postal';
  @Column('text') value!: string;
}

export const ORGANISATION_ENTITIES = [EmployeeEntity, OrgUnitEntity, EngagementEntity, AddressEntity];
