/**
 * The headers a message carries through the delay ladder: written when it
 * enters, read (and checked, since a queue can be written to by others) when it
 * is due, and taken off before it is forwarded.
 */
import type { ConsumeMessage, MessageProperties, Options } from 'amqplib';
import { MoEventParseError } from '../errors/mo-event-parse.error';
import { parseMoRoutingKey } from '../events/routing-key';
import { publishPropertiesOf } from '../util/publish-properties';
import {
  BIT_HEADER_PREFIX,
  DELAY_HEADER_PREFIX,
  DUE_HEADER,
  EXCHANGE_HEADER,
  META_HEADER,
  ROUTING_KEY_HEADER,
  secondsToBitHeaders,
} from './delay-ladder';

// Headers RabbitMQ adds on every dead-letter hop; the forwarded copy must not carry them.
const DEATH_HEADER = /^x-(death|first-death-|last-death-)/;

/** What the original message had that its ladder copy must not (it would expire or be transient there). */
export interface Meta {
  readonly expiration?: string;
  readonly deliveryMode?: number;
}

/** Where and when a message goes: read from an incoming event, or from a ladder copy's headers. */
export interface Route {
  readonly due: number;
  readonly routingKey: string;
  /** The exchange it first came from. */
  readonly exchange: string;
  readonly meta: Meta;
}

// The largest time a Date holds.
const MAX_DATE_MS = 8.64e15;

export function metaOf(properties: MessageProperties): Meta {
  return {
    ...(properties.expiration !== undefined && { expiration: String(properties.expiration) }),
    ...(properties.deliveryMode !== undefined && { deliveryMode: properties.deliveryMode }),
  };
}

/** The headers of the original message: without the ladder's own and RabbitMQ's dead-letter history. */
export function withoutLadderHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (!key.startsWith(DELAY_HEADER_PREFIX) && !key.startsWith(BIT_HEADER_PREFIX) && !DEATH_HEADER.test(key)) {
      kept[key] = value;
    }
  }
  return kept;
}

/**
 * Where a message of the due queue goes, from the headers the ladder copy was
 * given. Each is checked: the due queue is the agent's own, but a message put
 * there by anything else must not steer the agent (a routing key outside the
 * vocabulary, a broken meta). Throws `MoEventParseError` naming the header.
 */
export function readLadderHeaders(message: ConsumeMessage): Route {
  const headers = message.properties.headers ?? {};
  const fail = (header: string, allowed: string) =>
    new MoEventParseError(
      `header ${header}`,
      headers[header],
      `${allowed} (set by the delay agent when the message entered its ladder)`,
      ladderRoutingKeyOf(message),
    );
  const due = headers[DUE_HEADER];
  if (!(typeof due === 'number' && Number.isInteger(due) && due >= 0 && due <= MAX_DATE_MS)) {
    throw fail(DUE_HEADER, 'when it is due, in whole milliseconds since 1970');
  }
  const routingKey = headers[ROUTING_KEY_HEADER];
  if (typeof routingKey !== 'string' || !parseMoRoutingKey(routingKey)) {
    throw fail(ROUTING_KEY_HEADER, 'an MO routing key <service>.<object-type>.<action> of either vocabulary');
  }
  const exchange = headers[EXCHANGE_HEADER];
  if (typeof exchange !== 'string') throw fail(EXCHANGE_HEADER, 'the name of the exchange it came from');
  const meta = readMeta(headers[META_HEADER]);
  if (!meta) {
    throw fail(META_HEADER, 'JSON of an object with an optional "expiration" (digits) and "deliveryMode" (0-255)');
  }
  return { due, routingKey, exchange, meta };
}

/** The routing key a message of the ladder stands for: its header's, when it has one; else the one it came with. */
export function ladderRoutingKeyOf(message: ConsumeMessage): string {
  const key = message.properties.headers?.[ROUTING_KEY_HEADER];
  return typeof key === 'string' ? key : message.fields.routingKey;
}

function readMeta(value: unknown): Meta | undefined {
  if (typeof value !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const { expiration, deliveryMode, ...rest } = parsed as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return undefined;
  if (expiration !== undefined && !(typeof expiration === 'string' && /^\d{1,10}$/.test(expiration))) return undefined;
  // Any octet AMQP allows: the original's, whatever it was (RabbitMQ persists only 2).
  const octet = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255;
  if (deliveryMode !== undefined && !octet(deliveryMode)) return undefined;
  return {
    ...(expiration !== undefined && { expiration }),
    ...(deliveryMode !== undefined && { deliveryMode }),
  };
}

/**
 * A waiting copy's properties: the original's, persistent, with where it goes
 * when due, and in the ladder the bit headers of its `seconds` (a hold queue's
 * copy has none).
 */
export function ladderProperties(properties: MessageProperties, route: Route, seconds?: number): Options.Publish {
  return {
    ...publishPropertiesOf(properties),
    // Persistent in the ladder whatever the original was; it is restored on the way out.
    deliveryMode: 2,
    headers: {
      ...withoutLadderHeaders(properties.headers ?? {}),
      ...(seconds !== undefined && secondsToBitHeaders(seconds)),
      [DUE_HEADER]: route.due,
      [ROUTING_KEY_HEADER]: route.routingKey,
      [EXCHANGE_HEADER]: route.exchange,
      [META_HEADER]: JSON.stringify(route.meta),
    },
  };
}

/** The original's properties, restored: the ladder's headers off, its expiration and delivery mode back. */
export function forwardProperties(properties: MessageProperties, meta: Meta): Options.Publish {
  const out: Options.Publish = {
    ...publishPropertiesOf(properties, withoutLadderHeaders(properties.headers ?? {})),
    ...(meta.expiration !== undefined && { expiration: meta.expiration }),
  };
  if (meta.deliveryMode !== undefined) out.deliveryMode = meta.deliveryMode;
  else delete out.deliveryMode;
  return out;
}
