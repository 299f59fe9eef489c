import type { ConsumeMessage } from 'amqplib';
import { MoEventParseError } from '../errors/mo-event-parse.error';
import { MoEventValidationError } from '../errors/mo-event-validation.error';
import { OwnCopies, deliveryOrigin } from './mo-event-message';
import { UUID_ALLOWED, normalizeUuid } from './uuid';
import { MO_CHANGE_WORDS_ALLOWED, MoChangeObjectType, isMoChangeObjectType } from './vocabulary';

/**
 * A message of OS2mo's AMQP subsystem (2023-), validated: "this object may have
 * changed". The routing key is the object type; the body a JSON string holding
 * the object's UUID. No time and no action: read the object to see what it is now.
 */
export interface MoChangeMessage {
  readonly objectType: MoChangeObjectType;
  /** The changed object's UUID (lower case). */
  readonly uuid: string;
  /** The routing key: the object type. */
  readonly routingKey: MoChangeObjectType;
  /** The AMQP `message_id`, when the sender gave one. */
  readonly messageId?: string;
  /** True when this delivery is not the first (a broker redelivery or a retry after a failure). */
  readonly redelivered: boolean;
}

/** A subsystem message ready to publish: its routing key and its exact body. */
export interface MoOutgoingChange {
  readonly routingKey: MoChangeObjectType;
  readonly uuid: string;
  /** What OS2mo's `json.dumps(str(uuid))` writes: `"c390b9a2-7202-48e6-972b-ce36a90065c4"`, quotes included. */
  readonly body: string;
}

const ROUTING_KEY_ALLOWED = `one word, the object type: ${MO_CHANGE_WORDS_ALLOWED}`;
const BODY_ALLOWED = `a JSON string holding the object's UUID, as OS2mo writes it: "\\"c390b9a2-7202-48e6-972b-ce36a90065c4\\""`;

/** Checks the object type and UUID; throws `MoEventValidationError` naming the bad one. */
export function buildMoChange(objectType: MoChangeObjectType, uuid: string): MoOutgoingChange {
  if (!isMoChangeObjectType(objectType)) {
    throw new MoEventValidationError('objectType', objectType, MO_CHANGE_WORDS_ALLOWED);
  }
  const canonical = normalizeUuid(uuid);
  if (canonical === undefined) throw new MoEventValidationError('uuid', uuid, UUID_ALLOWED);
  // A canonical UUID holds nothing JSON escapes: this is json.dumps(str(uuid)) byte for byte.
  return { routingKey: objectType, uuid: canonical, body: `"${canonical}"` };
}

/**
 * For plain `@RabbitSubscribe` handlers: the validated subsystem message, or a
 * `MoEventParseError` that says what is wrong. It reads the message's own bytes
 * (a parsed payload cannot tell the JSON string from bare text, which OS2mo's
 * readers refuse), so any `payload` golevelup passed is not needed.
 *
 * ```ts
 * @RabbitSubscribe({ exchange: 'os2mo', routingKey: 'engagement', queue: 'mine', allowNonJsonMessages: true })
 * handle(_payload: unknown, message: ConsumeMessage) {
 *   const change = parseMoChange(message);
 * }
 * ```
 */
export function parseMoChange(message: ConsumeMessage): MoChangeMessage {
  return readMoChangeDelivery(message.content, message, 'any').event;
}

/** Validates a subsystem delivery; the `x-mo-amqp-*` headers are believed as `readMoDelivery` believes them. */
export function readMoChangeDelivery(
  content: Buffer,
  message: Pick<ConsumeMessage, 'fields' | 'properties'>,
  ownCopies: OwnCopies,
): { event: MoChangeMessage; attempt: number } {
  const { routingKey, attempt } = deliveryOrigin(message, ownCopies);
  const fail = (field: string, value: unknown, allowed: string) =>
    new MoEventParseError(field, value, allowed, routingKey);
  if (!isMoChangeObjectType(routingKey)) throw fail('routing key', routingKey, ROUTING_KEY_ALLOWED);
  const held = changeBodyText(content, fail);
  const uuid = normalizeUuid(held);
  if (uuid === undefined) throw fail('body', held, BODY_ALLOWED);
  const { messageId } = message.properties;
  const event: MoChangeMessage = {
    objectType: routingKey,
    uuid,
    routingKey,
    ...(typeof messageId === 'string' && { messageId }),
    redelivered: message.fields.redelivered || attempt > 1,
  };
  return { event, attempt };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The string the body's JSON holds; throws when it is not UTF-8 JSON holding a string. */
function changeBodyText(content: Buffer, fail: (field: string, value: unknown, allowed: string) => Error): string {
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, where JSON.parse refuses it, as FastRAMQPI does.
    text = utf8.decode(content);
  } catch {
    throw fail('body', `${content.length} bytes that are not UTF-8`, BODY_ALLOWED);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw fail('body', text.slice(0, 200), BODY_ALLOWED);
  }
  if (typeof value !== 'string') throw fail('body', value, BODY_ALLOWED);
  return value;
}
