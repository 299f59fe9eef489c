import { MoEventValidationError } from '../errors/mo-event-validation.error';
import { TIME_TEXT_ALLOWED, formatMoTime, parseMoTime } from './mo-time';
import { moRoutingKey } from './routing-key';
import { UUID_ALLOWED, normalizeUuid } from './uuid';
import {
  MoAction,
  MoObjectType,
  MoRoutingKey,
  MoService,
  MoWordProblem,
  findBadMoWord,
  isMoAction,
  isMoObjectType,
  isMoService,
} from './vocabulary';

/** Options of one event: when the change is effective, and the changed object itself. */
export interface MoEventOptions {
  /**
   * When the change is effective. A `Date` is written with six fraction digits and
   * the configured zone's offset; a string must be ISO 8601 and is sent unchanged.
   * Default: now.
   */
  time?: Date | string;
  /** The UUID of the engagement, address, … itself; adds `object_uuid` to the body. */
  objectUuid?: string;
}

const OPTION_KEYS: ReadonlySet<string> = new Set(['time', 'objectUuid']);

/** A validated event, ready to publish. */
export interface MoOutgoingEvent {
  readonly routingKey: MoRoutingKey;
  readonly uuid: string;
  readonly time: string;
  readonly objectUuid?: string;
  /** The exact body text: `{"uuid": "…", "time": "…"}`, Python `json.dumps` spacing. */
  readonly body: string;
}

function oneOf(values: readonly string[]): string {
  return `one of ${values.join(', ')}`;
}

/**
 * Checks every argument against the contract and builds the message body.
 * Throws `MoEventValidationError` naming the first bad field.
 */
export function buildMoEvent(
  service: MoService,
  objectType: MoObjectType,
  action: MoAction,
  uuid: string,
  options: MoEventOptions | undefined,
  timeZone: string,
  now: () => Date = () => new Date(),
): MoOutgoingEvent {
  // The quick check first: this is the publish path.
  if (!isMoService(service) || !isMoObjectType(objectType) || !isMoAction(action)) {
    const bad = findBadMoWord({ service, objectType, action }) as MoWordProblem;
    throw new MoEventValidationError(bad.field, bad.value, oneOf(bad.allowed));
  }
  const canonicalUuid = normalizeUuid(uuid);
  if (canonicalUuid === undefined) throw new MoEventValidationError('uuid', uuid, UUID_ALLOWED);

  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new MoEventValidationError('options', options, 'an object with time and/or objectUuid, or nothing');
  }
  if (options) {
    for (const key in options) {
      if (!OPTION_KEYS.has(key) && Object.prototype.hasOwnProperty.call(options, key)) {
        throw new MoEventValidationError(
          `options.${key}`,
          (options as Record<string, unknown>)[key],
          'no such option; the options are time and objectUuid',
        );
      }
    }
  }
  const time = eventTime(options?.time, timeZone, now);

  let objectUuid: string | undefined;
  if (options?.objectUuid !== undefined) {
    objectUuid = normalizeUuid(options.objectUuid);
    if (objectUuid === undefined) {
      throw new MoEventValidationError('options.objectUuid', options.objectUuid, `${UUID_ALLOWED}, or leave it out`);
    }
  }

  // Both values are validated to contain nothing JSON would escape, so plain
  // concatenation gives the same bytes as JSON.stringify with Python's spacing.
  const body =
    objectUuid === undefined
      ? `{"uuid": "${canonicalUuid}", "time": "${time}"}`
      : `{"uuid": "${canonicalUuid}", "time": "${time}", "object_uuid": "${objectUuid}"}`;
  return { routingKey: moRoutingKey(service, objectType, action), uuid: canonicalUuid, time, objectUuid, body };
}

function eventTime(value: unknown, timeZone: string, now: () => Date): string {
  if (value === undefined) {
    return formatMoTime(now(), timeZone) as string;
  }
  if (value instanceof Date) {
    const text = formatMoTime(value, timeZone);
    if (text === undefined) {
      throw new MoEventValidationError('options.time', value, `a valid Date in the years 0001-9999 (in ${timeZone})`);
    }
    return text;
  }
  if (typeof value === 'string' && parseMoTime(value, timeZone) !== undefined) return value;
  throw new MoEventValidationError('options.time', value, `a Date, or ${TIME_TEXT_ALLOWED}`);
}
