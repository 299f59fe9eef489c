import { ValidateBy, ValidationOptions, buildMessage } from 'class-validator';
import { normalizeMoTime } from './mo-time';

/**
 * class-validator check that a value is time text MO events accept, so an API
 * refuses with 400 exactly what publishing would refuse later:
 *
 * ```ts
 * class CreateEngagementDto {
 *   @IsOptional() @IsMoTime() validFrom?: string;
 * }
 * ```
 */
export function IsMoTime(validationOptions?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isMoTime',
      validator: {
        // The zone only places a bare date, which every zone accepts.
        validate: (value: unknown) => normalizeMoTime(value) !== undefined,
        defaultMessage: buildMessage(
          (each) =>
            `${each}$property must be an ISO 8601 date or date-time such as 2021-07-27 or 2021-07-27T00:00:00+02:00 ` +
            '(an offset in whole minutes, at most 6 fraction digits)',
          validationOptions,
        ),
      },
    },
    validationOptions,
  );
}
