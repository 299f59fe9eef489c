import { MoEventParseError } from '../errors/mo-event-parse.error';
import type { MoEventMessage } from './mo-event-message';
import type { MoVocabulary } from './vocabulary';
import { UUID_ALLOWED } from './uuid';

const BOM = [0xef, 0xbb, 0xbf];
const BARE_DATE = /^\d{4}-\d{2}-\d{2}$/;
/** An offset written with seconds, `+01:30:15` or `+013015` (pydantic 1's pattern ends at minutes). */
const OFFSET_WITH_SECONDS = /[+-]\d{2}:?\d{2}:?\d{2}$/;

const TIME_ALLOWED =
  'a date-time ramqp can read: with hours and minutes ("2021-07-27T00:00:00+02:00"), ' +
  'an offset of hours and minutes or "Z" or none';

/**
 * For the `os2mo` vocabulary: a legacy event that our readers accept but
 * ramqp's pydantic model (`uuid`, `object_uuid`, `time`) refuses, which a ramqp
 * consumer would reject-and-requeue for ever. The four cases: a UTF-8 BOM before
 * the JSON, no `object_uuid`, a bare date, an offset with seconds. Returns the
 * error naming the field, or undefined when ramqp reads it.
 */
export function ramqpRefusal(content: Buffer, event: MoEventMessage): MoEventParseError | undefined {
  const fail = (field: string, value: unknown, allowed: string) =>
    new MoEventParseError(field, value, `${allowed} (AMQP__VOCABULARY=os2mo: what ramqp reads)`, event.routingKey);
  if (content.length >= 3 && BOM.every((byte, i) => content[i] === byte)) {
    return fail('body', 'a UTF-8 byte-order mark (EF BB BF) before the JSON', 'JSON with no byte-order mark');
  }
  if (event.objectUuid === undefined) return fail('object_uuid', undefined, UUID_ALLOWED);
  if (BARE_DATE.test(event.timeText) || OFFSET_WITH_SECONDS.test(event.timeText)) {
    return fail('time', event.timeText, TIME_ALLOWED);
  }
  return undefined;
}

/** In the `os2mo` vocabulary, throws what `ramqpRefusal` finds; in `seed`, reads as before. */
export function checkRamqpReads(vocabulary: MoVocabulary, content: Buffer, event: MoEventMessage): void {
  const refused = vocabulary === 'os2mo' ? ramqpRefusal(content, event) : undefined;
  if (refused) throw refused;
}
