import { MoEventValidationError } from '../errors/mo-event-validation.error';
import { TIME_TEXT_PUBLISH_ALLOWED, formatMoTime, normalizeMoTime } from './mo-time';
import { moRoutingKey } from './routing-key';
import { UUID_ALLOWED, normalizeUuid } from './uuid';
import {
  MO_VOCABULARIES,
  MoAction,
  MoObjectType,
  MoRoutingKey,
  MoService,
  MoVocabulary,
  MoWordProblem,
  describeAllowedWords,
  findBadMoWord,
  inMoVocabulary,
} from './vocabulary';
import { offsetSecondsAt } from './zone-offset';

/** Options of one event: when the change is effective, and the changed object itself. */
export interface MoEventOptions {
  /**
   * When the change is effective. Default: now. A `Date` is written as Python's
   * `isoformat()` writes it in the configured zone; a string must be ISO 8601 and
   * is written in that same shape, same instant and offset (`Z` as `+00:00`).
   */
  time?: Date | string;
  /**
   * The UUID of the engagement, address, … itself; adds `object_uuid` to the body.
   * Required in the `os2mo` vocabulary.
   */
  objectUuid?: string;
}

const OPTION_KEYS: ReadonlySet<string> = new Set(['time', 'objectUuid']);

/** A validated message of either format, ready to publish: its routing key and exact body. */
export interface MoOutgoingMessage {
  readonly routingKey: string;
  readonly body: string;
}

/** A validated event, ready to publish. */
export interface MoOutgoingEvent extends MoOutgoingMessage {
  readonly routingKey: MoRoutingKey;
  readonly uuid: string;
  readonly time: string;
  readonly objectUuid?: string;
  /** The exact body text: `{"uuid": "…", "object_uuid": "…", "time": "…"}`, Python `json.dumps` spacing. */
  readonly body: string;
}

/** What the configuration decides about an event: its vocabulary, and the zone of its times. */
export interface MoEventRules {
  readonly vocabulary: MoVocabulary;
  readonly timeZone: string;
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
  { vocabulary, timeZone }: MoEventRules,
  now: () => Date = () => new Date(),
): MoOutgoingEvent {
  // The quick check first: this is the publish path.
  if (!inMoVocabulary(vocabulary, service, objectType, action)) {
    const bad = findBadMoWord({ service, objectType, action }, vocabulary) as MoWordProblem;
    throw new MoEventValidationError(bad.field, bad.value, describeAllowedWords(bad));
  }
  const canonicalUuid = normalizeUuid(uuid);
  if (canonicalUuid === undefined) throw new MoEventValidationError('uuid', uuid, UUID_ALLOWED);

  if (options !== undefined && !isPlainObject(options)) {
    throw new MoEventValidationError(
      'options',
      options,
      'a plain object ({ time, objectUuid }) with time and/or objectUuid, or nothing',
    );
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
      const required = MO_VOCABULARIES[vocabulary].objectUuidRequired;
      throw new MoEventValidationError(
        'options.objectUuid',
        options.objectUuid,
        required ? `${UUID_ALLOWED} (required in the ${vocabulary} vocabulary)` : `${UUID_ALLOWED}, or leave it out`,
      );
    }
  } else if (MO_VOCABULARIES[vocabulary].objectUuidRequired) {
    throw new MoEventValidationError(
      'options.objectUuid',
      undefined,
      `the changed object's own UUID (options.objectUuid): the ${vocabulary} vocabulary (AMQP__VOCABULARY=${vocabulary}) ` +
        'requires object_uuid in every body, as OS2mo 2021+ and ramqp do',
    );
  }

  // The values are validated to contain nothing JSON would escape, so plain
  // concatenation gives the same bytes as Python's json.dumps, in OS2mo's key order.
  const body =
    objectUuid === undefined
      ? `{"uuid": "${canonicalUuid}", "time": "${time}"}`
      : `{"uuid": "${canonicalUuid}", "object_uuid": "${objectUuid}", "time": "${time}"}`;
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
    // A zone's local mean time (before standard time, about 1900) has an offset with seconds: pydantic refuses those.
    if (timeZone !== 'UTC' && offsetSecondsAt(value.getTime(), timeZone) % 60 !== 0) {
      throw new MoEventValidationError(
        'options.time',
        value,
        `a Date at which ${timeZone}'s offset is whole minutes (then it was ${text.slice(-9)}, ` +
          'which ramqp cannot read); pass it as text with an offset',
      );
    }
    return text;
  }
  const text = normalizeMoTime(value, timeZone);
  if (text !== undefined) return text;
  throw new MoEventValidationError('options.time', value, `a Date, or ${TIME_TEXT_PUBLISH_ALLOWED}`);
}

/** `{ … }` or `Object.create(null)`: not an array, a Map, a Date or another class's instance. */
function isPlainObject(value: unknown): value is object {
  if (value === null || typeof value !== 'object') return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}
