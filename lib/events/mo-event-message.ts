import type { ConsumeMessage } from 'amqplib';
import { MoEventParseError } from '../errors/mo-event-parse.error';
import { TIME_TEXT_ALLOWED, parseMoTime } from './mo-time';
import { parseMoRoutingKey } from './routing-key';
import { UUID_ALLOWED, normalizeUuid } from './uuid';
import {
  MO_ACTIONS,
  MO_OBJECT_TYPES,
  MO_SERVICES,
  MoAction,
  MoObjectType,
  MoRoutingKey,
  MoService,
} from './vocabulary';
import { MO_HEADER_ATTEMPT, MO_HEADER_ROUTING_KEY } from '../mo-amqp.constants';
import { MAX_ATTEMPT } from './retry-policy';

/** A received MO event, validated. */
export interface MoEventMessage {
  /** The affected employee's or unit's UUID (lower case). */
  readonly uuid: string;
  /** When the change is effective (to the millisecond; `timeText` has it all). */
  readonly time: Date;
  /** `time` exactly as it was sent. */
  readonly timeText: string;
  readonly routingKey: MoRoutingKey;
  readonly service: MoService;
  readonly objectType: MoObjectType;
  readonly action: MoAction;
  /** The changed object's own UUID, when the publisher sent one. */
  readonly objectUuid?: string;
  /** The AMQP `message_id`: the same on every copy of one event, so deduplicate on it. */
  readonly messageId?: string;
  /** True when this delivery is not the first (a broker redelivery or a retry after a failure). */
  readonly redelivered: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

const ROUTING_KEY_ALLOWED =
  `<service>.<object-type>.<action> with words of either MO vocabulary: services ${MO_SERVICES.join(', ')}; ` +
  `object types ${MO_OBJECT_TYPES.join(', ')}; actions ${MO_ACTIONS.join(', ')}`;

/**
 * For plain `@RabbitSubscribe` handlers: the typed, validated event, or a
 * `MoEventParseError` that says what is wrong.
 *
 * ```ts
 * @RabbitSubscribe({ exchange: 'os2mo', routingKey: '#', queue: 'mine', allowNonJsonMessages: true })
 * handle(payload: unknown, message: ConsumeMessage) {
 *   const event = parseMoEvent(payload, message);
 * }
 * ```
 *
 * `payload` is what golevelup passed (the parsed JSON); when it is undefined,
 * a string or a Buffer, the message's own bytes are read. A naive `time` is read
 * in `timeZone` (default UTC). A copy this package made (a retry or dead-letter
 * copy, sent through the default exchange) is read under its original routing key.
 */
export function parseMoEvent(
  payload: unknown,
  message: ConsumeMessage,
  { timeZone = 'UTC' }: { timeZone?: string } = {},
): MoEventMessage {
  const body =
    payload === undefined || typeof payload === 'string' || Buffer.isBuffer(payload) ? message.content : payload;
  return readMoDelivery(body, message, timeZone, 'any').event;
}

/**
 * Whose copies a consumer trusts the `x-mo-amqp-*` headers of: those put on
 * queue `name` through the default exchange (its own retries), any sent through
 * the default exchange (`any`), or none.
 */
export type OwnCopies = 'any' | 'none' | { readonly queue: string };

/** A delivery read: the event, and which attempt at handling it this is. */
export interface MoDelivery {
  readonly event: MoEventMessage;
  readonly attempt: number;
}

/**
 * Validates a delivery: `body` is the message's bytes or an already parsed
 * value. The `x-mo-amqp-*` headers are believed only on copies this package
 * made (see `OwnCopies`); a message from an exchange that carries another
 * routing key in them is refused, never read under that key.
 */
export function readMoDelivery(
  body: unknown,
  message: Pick<ConsumeMessage, 'fields' | 'properties'>,
  timeZone: string,
  ownCopies: OwnCopies,
): MoDelivery {
  const { routingKey, attempt } = deliveryOrigin(message, ownCopies);
  const fail = (field: string, value: unknown, allowed: string) =>
    new MoEventParseError(field, value, allowed, routingKey);

  const words = parseMoRoutingKey(routingKey);
  if (!words) {
    throw fail('routing key', routingKey, ROUTING_KEY_ALLOWED);
  }
  const object = Buffer.isBuffer(body) ? decodeJson(body, fail) : body;
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    throw fail('body', object, 'a JSON object with "uuid" and "time"');
  }
  const fields = object as Record<string, unknown>;
  const uuid = normalizeUuid(fields.uuid);
  if (uuid === undefined) throw fail('uuid', fields.uuid, UUID_ALLOWED);
  const timeText = fields.time;
  const parsed = parseMoTime(timeText, timeZone);
  if (parsed === undefined) throw fail('time', timeText, TIME_TEXT_ALLOWED);
  let objectUuid: string | undefined;
  if (fields.object_uuid !== undefined) {
    objectUuid = normalizeUuid(fields.object_uuid);
    if (objectUuid === undefined) throw fail('object_uuid', fields.object_uuid, `${UUID_ALLOWED}, or absent`);
  }
  const { properties } = message;
  const event: MoEventMessage = {
    uuid,
    time: new Date(parsed.epochMs),
    timeText: timeText as string,
    routingKey: routingKey as MoRoutingKey,
    ...words,
    ...(objectUuid !== undefined && { objectUuid }),
    ...(typeof properties.messageId === 'string' && { messageId: properties.messageId }),
    redelivered: message.fields.redelivered || attempt > 1,
  };
  return { event, attempt };
}

/** The routing key a delivery stands for and its attempt, from the headers only where they can be believed. */
export function deliveryOrigin(
  { fields, properties }: Pick<ConsumeMessage, 'fields' | 'properties'>,
  ownCopies: OwnCopies,
): { routingKey: string; attempt: number } {
  const headers = properties.headers ?? {};
  const delivered = fields.routingKey;
  const headerKey = headers[MO_HEADER_ROUTING_KEY];
  const ours =
    fields.exchange === '' && (ownCopies === 'any' || (typeof ownCopies === 'object' && delivered === ownCopies.queue));
  if (!ours) {
    if (headerKey !== undefined && headerKey !== delivered) {
      throw new MoEventParseError(
        `header ${MO_HEADER_ROUTING_KEY}`,
        headerKey,
        `absent, or "${delivered}" (the routing key it was delivered with from exchange "${fields.exchange}"): ` +
          "only this package's copies on a consumer's own queue carry another",
        delivered,
      );
    }
    return { routingKey: delivered, attempt: 1 }; // from an exchange: a first attempt, whatever it says
  }
  if (headerKey !== undefined && typeof headerKey !== 'string') {
    throw new MoEventParseError(`header ${MO_HEADER_ROUTING_KEY}`, headerKey, 'a routing key (text)', delivered);
  }
  const attempt = headers[MO_HEADER_ATTEMPT] ?? 1;
  if (!(Number.isInteger(attempt) && (attempt as number) >= 1 && (attempt as number) <= MAX_ATTEMPT)) {
    throw new MoEventParseError(
      `header ${MO_HEADER_ATTEMPT}`,
      attempt,
      `a whole number from 1 to ${MAX_ATTEMPT}, or absent`,
      headerKey ?? delivered,
    );
  }
  return { routingKey: headerKey ?? delivered, attempt: attempt as number };
}

function decodeJson(content: Buffer, fail: (field: string, value: unknown, allowed: string) => Error): unknown {
  let text: string;
  try {
    text = utf8.decode(content);
  } catch {
    throw fail('body', `${content.length} bytes that are not UTF-8`, 'UTF-8 JSON');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw fail('body', text, 'JSON');
  }
}
