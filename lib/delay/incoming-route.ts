import type { ConsumeMessage } from 'amqplib';
import { MoEventParseError } from '../errors/mo-event-parse.error';
import { readMoDelivery } from '../events/mo-event-message';
import { parseMoTime } from '../events/mo-time';
import { checkRamqpReads } from '../events/ramqp-rules';
import type { MoVocabulary } from '../events/vocabulary';
import { DELAY_HEADER_PREFIX } from './delay-ladder';
import { Route, metaOf } from './ladder-headers';

/**
 * A message from the events exchange: the full MO check (in the `os2mo`
 * vocabulary also what ramqp reads: `ramqpRefusal`), and none of the ladder's own headers.
 */
export function routeOfIncoming(
  message: ConsumeMessage,
  { timeZone, vocabulary }: { readonly timeZone: string; readonly vocabulary: MoVocabulary },
): Route {
  const { routingKey, exchange } = message.fields;
  const headers = message.properties.headers ?? {};
  const steering = Object.keys(headers).find((key) => key.startsWith(DELAY_HEADER_PREFIX));
  if (steering !== undefined) {
    throw new MoEventParseError(
      `header ${steering}`,
      headers[steering],
      `absent: the delay agent's ${DELAY_HEADER_PREFIX}* headers are its ladder's own, never taken from exchange "${exchange}"`,
      routingKey,
    );
  }
  // Only valid events are delayed; the rest go to the DLQ with the reason.
  const { event } = readMoDelivery(message.content, message, timeZone, 'none');
  // A ramqp consumer of the delayed exchange would requeue such a copy for ever: it is not forwarded.
  checkRamqpReads(vocabulary, message.content, event);
  const parsed = parseMoTime(event.timeText, timeZone) as NonNullable<ReturnType<typeof parseMoTime>>;
  return {
    // Never early: a time with microseconds beyond the millisecond is due at the next millisecond.
    due: parsed.epochMs + (parsed.extraNanos > 0 ? 1 : 0),
    routingKey,
    exchange,
    meta: metaOf(message.properties),
  };
}
