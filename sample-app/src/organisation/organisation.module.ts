import { Module } from '@nestjs/common';
import { AddressesService } from './addresses.service';
import { EmployeesService } from './employees.service';
import { EngagementsService } from './engagements.service';
import { OrgUnitsService } from './org-units.service';
import { OrganisationController } from './organisation.controller';

@Module({
  controllers: [OrganisationController],
  providers: [EmployeesService, OrgUnitsService, EngagementsService, AddressesService],
})
export class OrganisationModule {}
