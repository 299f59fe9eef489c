import { IsOptional } from 'class-validator';
import { IsMoTime } from 'nestjs-mo-amqp';

/** When a change takes effect, as OS2mo's `validity.from`: ISO 8601, default now. */
export class EffectiveDateDto {
  @IsOptional()
  @IsMoTime()
  validFrom?: string;
}
