/** The sample's objects, shaped like OS2mo's (much reduced). */
export interface Employee {
  uuid: string;
  name: string;
}

export interface OrgUnit {
  uuid: string;
  name: string;
  parentUuid?: string;
}

export interface Engagement {
  uuid: string;
  employeeUuid: string;
  orgUnitUuid: string;
  jobTitle: string;
}

export interface Address {
  uuid: string;
  employeeUuid?: string;
  orgUnitUuid?: string;
  addressType: 'email' | 'phone' | 'postal';
  value: string;
}

/** What a change returns: the object, and when the change takes effect (for the event's `time`). */
export interface Change<T> {
  object: T;
  validFrom: string | undefined;
}
