import type { GetMessage, MessageProperties, Options } from 'amqplib';
import { EXCHANGE_NAME } from '../config/amqp-rules';
import {
  MO_HEADER_ATTEMPT,
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MO_HEADER_REQUEUED,
  MO_HEADER_ROUTING_KEY,
} from '../mo-amqp.constants';
import { normalizeUuid } from '../events/uuid';
import { describeValue } from '../util/describe-value';
import { publishPropertiesOf } from '../util/publish-properties';
import { printable } from './cli-broker';

/** Where a dead-lettered message was first published, and what told us. */
export interface Origin {
  readonly exchange: string;
  readonly routingKey: string;
  readonly from: 'x-mo-amqp headers' | 'x-death';
}

/** Headers that belong to the dead-lettering, not to the message: none goes back with it. */
const DEAD_LETTER_HEADERS = [
  MO_HEADER_ATTEMPT,
  MO_HEADER_REASON,
  MO_HEADER_ROUTING_KEY,
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  'x-death',
  'x-first-death-exchange',
  'x-first-death-queue',
  'x-first-death-reason',
  'x-last-death-exchange',
  'x-last-death-queue',
  'x-last-death-reason',
  'x-delivery-count',
  // RabbitMQ 4.3's quorum queues count each time a message was handed out, also when it came back unfailed.
  'x-acquired-count',
];

/**
 * Where a dead-lettered message came from, read from headers that came from
 * outside and are checked as such: this package's `x-mo-amqp-exchange` and
 * `x-mo-amqp-routing-key` (both, or neither), else the first (latest) `x-death`
 * entry RabbitMQ wrote when it dead-lettered the message itself (a quorum
 * queue's delivery limit). A string saying what is wrong when neither will do.
 */
export function originOf(headers: MessageProperties['headers']): Origin | string {
  const h: Record<string, unknown> = headers ?? {};
  if (h[MO_HEADER_EXCHANGE] !== undefined || h[MO_HEADER_ROUTING_KEY] !== undefined) {
    const problem =
      exchangeProblem(h[MO_HEADER_EXCHANGE], `header ${MO_HEADER_EXCHANGE}`) ??
      routingKeyProblem(h[MO_HEADER_ROUTING_KEY], `header ${MO_HEADER_ROUTING_KEY}`);
    if (problem) return problem;
    return {
      exchange: h[MO_HEADER_EXCHANGE] as string,
      routingKey: h[MO_HEADER_ROUTING_KEY] as string,
      from: 'x-mo-amqp headers',
    };
  }
  const deaths = h['x-death'];
  if (deaths === undefined) {
    return `it has neither ${MO_HEADER_EXCHANGE} and ${MO_HEADER_ROUTING_KEY} headers nor an x-death header: where it came from is unknown`;
  }
  const first: unknown = Array.isArray(deaths) ? deaths[0] : undefined;
  if (first === null || typeof first !== 'object') {
    return `header x-death is ${describeValue(deaths)}, not a list of dead-letterings`;
  }
  const death = first as Record<string, unknown>;
  const keys = death['routing-keys'];
  const problem =
    exchangeProblem(death.exchange, 'x-death[0].exchange') ??
    (Array.isArray(keys) ? routingKeyProblem(keys[0], "x-death[0]['routing-keys'][0]") : undefined) ??
    (Array.isArray(keys) ? undefined : `x-death[0]['routing-keys'] is ${describeValue(keys)}, not a list`);
  if (problem) return problem;
  return { exchange: death.exchange as string, routingKey: (keys as string[])[0], from: 'x-death' };
}

/** Why a header's value cannot be an exchange to publish to ("" is the default exchange). */
function exchangeProblem(value: unknown, what: string): string | undefined {
  if (value === '' || (typeof value === 'string' && EXCHANGE_NAME.pattern.test(value))) return undefined;
  const kind = typeof value === 'string' ? 'an exchange name this package publishes to' : 'text';
  return `${what} is ${describeValue(value)}, not ${kind} (${EXCHANGE_NAME.allowed}, or "" for the default exchange)`;
}

function routingKeyProblem(value: unknown, what: string): string | undefined {
  if (typeof value === 'string' && value !== '' && Buffer.byteLength(value) <= 255) return undefined;
  return `${what} is ${describeValue(value)}, not a routing key (1-255 bytes of text)`;
}

/**
 * The properties the message goes back with: its own, without the headers of its
 * dead-lettering, counting how often it was put back (`x-mo-amqp-requeued`).
 * With `viaQueue`, the origin travels in the headers a consumer believes on its
 * own queue (as its retry copies do).
 */
export function requeueProperties(properties: MessageProperties, origin: Origin, viaQueue: boolean): Options.Publish {
  const headers: Record<string, unknown> = { ...(properties.headers ?? {}) };
  for (const name of DEAD_LETTER_HEADERS) delete headers[name];
  const before = headers[MO_HEADER_REQUEUED];
  headers[MO_HEADER_REQUEUED] = (Number.isSafeInteger(before) && (before as number) >= 0 ? (before as number) : 0) + 1;
  if (viaQueue) {
    headers[MO_HEADER_ROUTING_KEY] = origin.routingKey;
    headers[MO_HEADER_EXCHANGE] = origin.exchange;
  }
  return { ...publishPropertiesOf(properties, headers), mandatory: true };
}

/** A header's value as one printable line (text from outside, escaped and cut short). */
export function headerText(value: unknown): string {
  if (value === undefined) return '-';
  if (Buffer.isBuffer(value)) return printable(value.toString('utf8'));
  return printable(typeof value === 'string' ? value : describeValue(value));
}

/** A body over this is not parsed for `dlq list` (OS2mo's are about 100 bytes; `dlq show` prints any). */
const LIST_BODY_MAX = 64 * 1024;

/**
 * `uuid=… object_uuid=…` of a `dlq list` line, from a body that came from outside:
 * each a UUID (lower case, as the consumer reads it), else a marker: `-` the body
 * has none, `invalid` it has one that is not a UUID, `not-json` the body is not a
 * UTF-8 JSON object, `too-large` it is over 64 KiB. Nothing else of the body is printed.
 * An AMQP-subsystem body (a JSON string) is read as its `uuid`.
 */
function bodyUuidsText(content: Buffer): string {
  const json = moJsonOf(content);
  const body = typeof json === 'string' ? json : json.kind === 'change' ? { uuid: json.uuid } : json.body;
  const text = (field: string) =>
    typeof body === 'string' ? body : !Object.hasOwn(body, field) ? '-' : (normalizeUuid(body[field]) ?? 'invalid');
  return `uuid=${text('uuid')} object_uuid=${text('object_uuid')}`;
}

function moJsonOf(
  content: Buffer,
): { kind: 'event'; body: Record<string, unknown> } | { kind: 'change'; uuid: string } | 'not-json' | 'too-large' {
  if (content.length > LIST_BODY_MAX) return 'too-large';
  let body: unknown;
  try {
    body = JSON.parse(UTF8.decode(content));
  } catch {
    return 'not-json';
  }
  if (typeof body === 'string') return { kind: 'change', uuid: body };
  return body !== null && typeof body === 'object' && !Array.isArray(body)
    ? { kind: 'event', body: body as Record<string, unknown> }
    : 'not-json';
}

/** One line of `dlq list`. */
export function listLine(index: number, message: GetMessage): string {
  const { properties } = message;
  const headers: Record<string, unknown> = properties.headers ?? {};
  const origin = originOf(headers);
  const where =
    typeof origin === 'string'
      ? 'origin unknown'
      : `[${printable(origin.routingKey)}] from "${printable(origin.exchange)}"`;
  return (
    `#${index} message_id=${oneWord(headerText(properties.messageId))} ${bodyUuidsText(message.content)} ${where} attempt=${headerText(headers[MO_HEADER_ATTEMPT])} ` +
    `queue=${headerText(headers[MO_HEADER_QUEUE] ?? firstDeathQueue(headers))} ` +
    (headers[MO_HEADER_REQUEUED] === undefined ? '' : `requeued=${headerText(headers[MO_HEADER_REQUEUED])} `) +
    'reason: ' +
    headerText(headers[MO_HEADER_REASON] ?? firstDeathReason(headers))
  );
}

/** Spaces and invisible format characters (bidi overrides) escaped: a hostile message_id cannot pose as the fields after it. */
function oneWord(text: string): string {
  return text.replace(/[\s\p{Cf}]/gu, (c) => {
    const code = c.codePointAt(0)!.toString(16);
    return code.length > 4 ? `\\u{${code}}` : `\\u${code.padStart(4, '0')}`;
  });
}

function firstDeath(headers: Record<string, unknown>): Record<string, unknown> | undefined {
  const deaths = headers['x-death'];
  const first: unknown = Array.isArray(deaths) ? deaths[0] : undefined;
  return first !== null && typeof first === 'object' ? (first as Record<string, unknown>) : undefined;
}

function firstDeathQueue(headers: Record<string, unknown>): unknown {
  return firstDeath(headers)?.queue;
}

function firstDeathReason(headers: Record<string, unknown>): unknown {
  const reason = firstDeath(headers)?.reason;
  return reason === undefined ? undefined : `RabbitMQ: ${typeof reason === 'string' ? reason : describeValue(reason)}`;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Header values as JSON can show them: bytes as UTF-8 text where they are, else base64. */
function plain(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return bodyOf(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return typeof value === 'bigint' ? String(value) : value;
}

function bodyOf(content: Buffer): { text: string } | { base64: string } {
  try {
    return { text: UTF8.decode(content) };
  } catch {
    return { base64: content.toString('base64') };
  }
}

/** What `dlq show` prints: everything about one message, as JSON (control characters escaped by JSON). */
export function showJson(index: number, message: GetMessage): string {
  const origin = originOf(message.properties.headers);
  const { headers, ...rest } = message.properties;
  const properties = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
  return JSON.stringify(
    {
      index,
      origin: typeof origin === 'string' ? { unknown: origin } : origin,
      redelivered: message.fields.redelivered,
      properties: { ...properties, headers: plain(headers ?? {}) },
      body: bodyOf(message.content),
    },
    null,
    2,
  );
}
