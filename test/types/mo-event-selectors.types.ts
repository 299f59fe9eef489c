// Compiled by `npm run lint` (tsc over the tests), never run: each `@ts-expect-error`
// fails the build if the line under it compiles, i.e. if a selector for the wrong type
// were accepted.
import { MoEvent, MoEventSelectors } from '../../lib';

interface Engagement {
  uuid: string;
  employeeUuid: string;
  validFrom: string;
}

interface Address {
  uuid: string;
  value: string;
}

interface CreateEngagement {
  employeeUuid: string;
}

const person: MoEventSelectors<Engagement> = { uuid: (e) => e.employeeUuid, time: (e) => e.validFrom };

export class TypedSelectors {
  @MoEvent('employee', 'engagement', 'create', { uuid: (e: Engagement) => e.employeeUuid })
  async create(): Promise<Engagement> {
    return { uuid: '', employeeUuid: '', validFrom: '' };
  }

  @MoEvent('employee', 'engagement', 'create', person)
  createSync(): Engagement {
    return { uuid: '', employeeUuid: '', validFrom: '' };
  }

  @MoEvent('employee', 'engagement', 'create', {
    uuid: (e: Engagement, dto: CreateEngagement) => [e.uuid, dto.employeeUuid],
  })
  async createFrom(dto: CreateEngagement): Promise<Engagement> {
    return { uuid: '', employeeUuid: dto.employeeUuid, validFrom: '' };
  }

  // Untyped selectors and the defaults fit any method.
  @MoEvent('employee', 'address', 'create')
  async anything(): Promise<Address> {
    return { uuid: '', value: '' };
  }

  // @ts-expect-error a selector for an Engagement on a method that resolves to an Address
  @MoEvent('employee', 'engagement', 'create', { uuid: (e: Engagement) => e.employeeUuid })
  async wrongResult(): Promise<Address> {
    return { uuid: '', value: '' };
  }

  // @ts-expect-error MoEventSelectors<Engagement> on a method that returns a string
  @MoEvent('employee', 'engagement', 'create', person)
  wrongSync(): string {
    return '';
  }

  @MoEvent('employee', 'engagement', 'create', {
    // @ts-expect-error a selector must return a UUID (or several), not a number
    uuid: (e: Engagement) => e.validFrom.length,
  })
  async wrongUuid(): Promise<Engagement> {
    return { uuid: '', employeeUuid: '', validFrom: '' };
  }
}
