import { Body, Controller, Delete, HttpCode, Param, ParseUUIDPipe, Patch, Post, Query } from '@nestjs/common';
import { AddressesService } from './addresses.service';
import { EffectiveDateDto } from './dto/effective-date.dto';
import {
  CreateAddressDto,
  CreateEmployeeDto,
  CreateEngagementDto,
  CreateOrgUnitDto,
  UpdateAddressDto,
  UpdateEmployeeDto,
  UpdateEngagementDto,
  UpdateOrgUnitDto,
} from './dto/organisation.dto';
import { EmployeesService } from './employees.service';
import { EngagementsService } from './engagements.service';
import { OrgUnitsService } from './org-units.service';

/**
 * Create, update and delete over HTTP; each change answers with the object.
 * Deleting takes the effective date as `?validFrom=`. The services publish the events.
 */
@Controller()
export class OrganisationController {
  constructor(
    private readonly employees: EmployeesService,
    private readonly units: OrgUnitsService,
    private readonly engagements: EngagementsService,
    private readonly addresses: AddressesService,
  ) {}

  @Post('employees')
  async createEmployee(@Body() dto: CreateEmployeeDto) {
    return (await this.employees.create(dto)).object;
  }

  @Patch('employees/:uuid')
  async updateEmployee(@Param('uuid', ParseUUIDPipe) uuid: string, @Body() dto: UpdateEmployeeDto) {
    return (await this.employees.update(uuid, dto)).object;
  }

  @Delete('employees/:uuid')
  @HttpCode(200)
  async deleteEmployee(@Param('uuid', ParseUUIDPipe) uuid: string, @Query() { validFrom }: EffectiveDateDto) {
    return (await this.employees.delete(uuid, validFrom)).object;
  }

  @Post('org-units')
  async createOrgUnit(@Body() dto: CreateOrgUnitDto) {
    return (await this.units.create(dto)).object;
  }

  @Patch('org-units/:uuid')
  async updateOrgUnit(@Param('uuid', ParseUUIDPipe) uuid: string, @Body() dto: UpdateOrgUnitDto) {
    return (await this.units.update(uuid, dto)).object;
  }

  @Delete('org-units/:uuid')
  @HttpCode(200)
  async deleteOrgUnit(@Param('uuid', ParseUUIDPipe) uuid: string, @Query() { validFrom }: EffectiveDateDto) {
    return (await this.units.delete(uuid, validFrom)).object;
  }

  @Post('engagements')
  async createEngagement(@Body() dto: CreateEngagementDto) {
    return (await this.engagements.create(dto)).object;
  }

  @Patch('engagements/:uuid')
  async updateEngagement(@Param('uuid', ParseUUIDPipe) uuid: string, @Body() dto: UpdateEngagementDto) {
    return (await this.engagements.update(uuid, dto)).object;
  }

  @Delete('engagements/:uuid')
  @HttpCode(200)
  async deleteEngagement(@Param('uuid', ParseUUIDPipe) uuid: string, @Query() { validFrom }: EffectiveDateDto) {
    return (await this.engagements.delete(uuid, validFrom)).object;
  }

  @Post('addresses')
  async createAddress(@Body() dto: CreateAddressDto) {
    return (await this.addresses.create(dto)).object;
  }

  @Patch('addresses/:uuid')
  async updateAddress(@Param('uuid', ParseUUIDPipe) uuid: string, @Body() dto: UpdateAddressDto) {
    return (await this.addresses.update(uuid, dto)).object;
  }

  @Delete('addresses/:uuid')
  @HttpCode(200)
  async deleteAddress(@Param('uuid', ParseUUIDPipe) uuid: string, @Query() { validFrom }: EffectiveDateDto) {
    return (await this.addresses.delete(uuid, validFrom)).object;
  }
}
