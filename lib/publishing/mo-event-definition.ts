import { MoEventDecoratorError } from '../errors/mo-event-decorator.error';
import { MoEventValidationError } from '../errors/mo-event-validation.error';
import { MoEventOptions } from '../events/mo-event';
import { normalizeUuid } from '../events/uuid';
import { MoAction, MoChangeObjectType, MoObjectType, MoService } from '../events/vocabulary';

/**
 * How `@MoEvent` finds the event's values in what the method returned (and the
 * arguments it was called with). All are optional.
 */
// Method signatures (not function-typed properties) so that a selector written for
// the method's own result type, `(e: Engagement) => …`, fits without naming generics.
export interface MoEventSelectors<TResult = unknown, TArgs extends unknown[] = unknown[]> {
  /**
   * The affected employee's or unit's UUID, or several (one message each; an
   * empty array sends none). Default: the result when it is a string, else `result.uuid`.
   */
  uuid?(result: TResult, ...args: TArgs): string | readonly string[] | null | undefined;
  /** When the change is effective (`Date` or ISO 8601 text). Default: now. */
  time?(result: TResult, ...args: TArgs): Date | string | null | undefined;
  /** The UUID of the changed object itself; adds `object_uuid` to the body (required in the `os2mo` vocabulary). */
  objectUuid?(result: TResult, ...args: TArgs): string | null | undefined;
  /**
   * Also publish OS2mo's AMQP-subsystem message (2023-) for the changed object:
   * `true` takes the object type's subsystem word (`employee` is `person`, `it`
   * is `ituser`, the others the same), or name the word; `false` or leaving it
   * out sends none. Its UUID is the objectUuid; for an event about the person
   * or unit itself (`employee.employee.*`, `org_unit.org_unit.*`) each event's
   * uuid. Sent once per call and object, even when stacked events name it.
   */
  change?: boolean | MoChangeObjectType;
}

/** One `@MoEvent` on a method, as recorded. */
export interface MoEventDefinition {
  readonly service: MoService;
  readonly objectType: MoObjectType;
  readonly action: MoAction;
  readonly selectors: MoEventSelectors;
  /** The subsystem message's object type, when `change` asks for one. */
  readonly change?: MoChangeObjectType;
}

/** True for an event about the person or unit itself (`employee.employee.*`, `org_unit.org_unit.*`): its uuid is the object. */
export function isAboutItself({ service, objectType }: Pick<MoEventDefinition, 'service' | 'objectType'>): boolean {
  return objectType === service;
}

/**
 * The subsystem message one event also owes (`change`): the object is its
 * objectUuid, or for an event about the person or unit itself its uuid. `what`
 * names it, the same for every event naming the object. Throws
 * `MoEventValidationError` when the objectUuid selector gave nothing.
 */
export function changeMessageOf(
  definition: MoEventDefinition,
  uuid: unknown,
  options: MoEventOptions,
): { objectType: MoChangeObjectType; uuid: string; what: string } | undefined {
  const { change } = definition;
  if (change === undefined) return undefined;
  const given = isAboutItself(definition) ? uuid : options.objectUuid;
  const object = normalizeUuid(given);
  if (object === undefined) {
    throw new MoEventValidationError(
      'objectUuid',
      given,
      `the changed ${definition.objectType}'s own UUID: change sends OS2mo's AMQP-subsystem message for it (none is sent)`,
    );
  }
  return { objectType: change, uuid: object, what: `its AMQP-subsystem message ${change} ${object}` };
}

/** The UUID (or UUIDs) and the options of one event, from the selectors or the defaults. */
export function selectEvent(
  label: string,
  definition: MoEventDefinition,
  result: unknown,
  args: unknown[],
): [uuids: unknown, options: MoEventOptions] {
  const { selectors } = definition;
  const uuids = selectors.uuid
    ? call(label, 'uuid', selectors.uuid, result, args)
    : typeof result === 'string'
      ? result
      : (result as { uuid?: unknown } | null | undefined)?.uuid;
  const options: MoEventOptions = {};
  if (selectors.time) {
    const time = call(label, 'time', selectors.time, result, args);
    if (time !== undefined && time !== null) options.time = time as Date | string;
  }
  if (selectors.objectUuid) {
    const objectUuid = call(label, 'objectUuid', selectors.objectUuid, result, args);
    if (objectUuid !== undefined && objectUuid !== null) options.objectUuid = objectUuid as string;
  }
  return [uuids, options];
}

function call(
  label: string,
  name: string,
  selector: (result: unknown, ...args: unknown[]) => unknown,
  result: unknown,
  args: unknown[],
): unknown {
  try {
    return selector(result, ...args);
  } catch (error) {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new MoEventDecoratorError(label, `the ${name} selector threw ${reason}`);
  }
}
