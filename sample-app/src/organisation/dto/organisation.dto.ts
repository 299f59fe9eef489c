import { PartialType } from '@nestjs/mapped-types';
import { IsIn, IsNotEmpty, IsOptional, IsString, IsUUID, MaxLength } from 'class-validator';
import { EffectiveDateDto } from './effective-date.dto';

export class CreateEmployeeDto extends EffectiveDateDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  name!: string;
}

export class UpdateEmployeeDto extends PartialType(CreateEmployeeDto) {}

export class CreateOrgUnitDto extends EffectiveDateDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  name!: string;

  @IsOptional()
  @IsUUID()
  parentUuid?: string;
}

export class UpdateOrgUnitDto extends PartialType(CreateOrgUnitDto) {}

export class CreateEngagementDto extends EffectiveDateDto {
  @IsUUID()
  employeeUuid!: string;

  @IsUUID()
  orgUnitUuid!: string;

  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  jobTitle!: string;
}

export class UpdateEngagementDto extends PartialType(CreateEngagementDto) {}

export const ADDRESS_TYPES = ['email', 'phone', 'postal'] as const;

/** An address belongs to an employee or to an organisation unit: exactly one of the two. */
export class CreateAddressDto extends EffectiveDateDto {
  @IsOptional()
  @IsUUID()
  employeeUuid?: string;

  @IsOptional()
  @IsUUID()
  orgUnitUuid?: string;

  @IsIn(ADDRESS_TYPES)
  addressType!: (typeof ADDRESS_TYPES)[number];

  @IsString()
  @IsNotEmpty()
  @MaxLength(500)
  value!: string;
}

export class UpdateAddressDto extends EffectiveDateDto {
  @IsOptional()
  @IsIn(ADDRESS_TYPES)
  addressType?: (typeof ADDRESS_TYPES)[number];

  @IsOptional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(500)
  value?: string;
}
