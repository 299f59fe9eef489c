import type { Options } from 'amqplib';
import { crc32 } from 'node:zlib';

/** One message kept on disk until the broker has confirmed it. */
export interface SpoolRecord {
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  readonly properties: Options.Publish;
  /** When it was spooled (ms since the epoch). */
  readonly spooledAt: number;
}

/** A record on disk is MAGIC, the payload's length and CRC-32, then the payload (JSON). */
const MAGIC = Buffer.from('MOS1');
const HEADER_BYTES = 12;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A record on disk: MAGIC, the payload's length and CRC-32, the payload. */
export function encodeRecord(record: SpoolRecord): Buffer {
  const payload = Buffer.from(
    JSON.stringify({
      e: record.exchange,
      k: record.routingKey,
      p: record.properties,
      b: record.content.toString('base64'),
      t: record.spooledAt,
    }),
  );
  const bytes = Buffer.alloc(HEADER_BYTES + payload.length);
  MAGIC.copy(bytes, 0);
  bytes.writeUInt32BE(payload.length, 4);
  bytes.writeUInt32BE(crc32(payload), 8);
  payload.copy(bytes, HEADER_BYTES);
  return bytes;
}

/** Bytes of a segment that hold no readable record, and why. */
export interface DamagedBytes {
  readonly offset: number;
  readonly bytes: Buffer;
  readonly reason: string;
}

/**
 * The records of a segment, and the stretches that hold none: a torn or
 * overwritten record (resynchronised at the next MAGIC), or one whose checksum
 * is right but whose payload is not a record (written by something else).
 */
export function decodeSegment(data: Buffer): { records: SpoolRecord[]; damaged: DamagedBytes[] } {
  const records: SpoolRecord[] = [];
  const damaged: DamagedBytes[] = [];
  let offset = 0;
  while (offset < data.length) {
    const damage = damageAt(data, offset);
    if (damage) {
      const next = data.indexOf(MAGIC, offset + 1); // the next record that may be whole
      const end = next < 0 ? data.length : next;
      damaged.push({ offset, bytes: data.subarray(offset, end), reason: damage });
      offset = end;
      continue;
    }
    const end = offset + HEADER_BYTES + data.readUInt32BE(offset + 4);
    const record = decodePayload(data.subarray(offset + HEADER_BYTES, end));
    if (typeof record === 'string') damaged.push({ offset, bytes: data.subarray(offset, end), reason: record });
    else records.push(record);
    offset = end;
  }
  return { records, damaged };
}

/** How many records a segment holds, read from their headers only (for counting adopted ones). */
export function countRecords(data: Buffer): number {
  let count = 0;
  for (let offset = 0; offset + HEADER_BYTES <= data.length;) {
    if (!data.subarray(offset, offset + 4).equals(MAGIC)) {
      const next = data.indexOf(MAGIC, offset + 1);
      if (next < 0) break;
      offset = next;
      continue;
    }
    count++;
    offset += HEADER_BYTES + data.readUInt32BE(offset + 4);
  }
  return count;
}

/** The record in a payload whose checksum is right, or why it is none. */
function decodePayload(payload: Buffer): SpoolRecord | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    return 'the checksum is right but the record is not JSON';
  }
  const r = parsed as Record<string, unknown> | null;
  if (
    r === null ||
    typeof r !== 'object' ||
    !SHORT(r.e) ||
    !SHORT(r.k) ||
    typeof r.b !== 'string' ||
    !BASE64.test(r.b) ||
    typeof r.t !== 'number' ||
    !isPublishProperties(r.p)
  ) {
    return 'the checksum is right but the record lacks its exchange, routing key, properties, body or time';
  }
  return {
    exchange: r.e,
    routingKey: r.k,
    properties: r.p as Options.Publish,
    content: Buffer.from(r.b, 'base64'),
    spooledAt: r.t,
  };
}

/** AMQP's short strings (names, most properties): at most 255 bytes of UTF-8. */
const SHORT = (v: unknown): v is string => typeof v === 'string' && Buffer.byteLength(v) <= 255;
const BOOLEAN = (v: unknown) => typeof v === 'boolean';
// Headers go in one frame with the other properties; RabbitMQ's smallest frame_max is 4 KiB, its default 128 KiB.
const MAX_HEADERS_JSON = 64 * 1024;
/**
 * What amqplib can encode and RabbitMQ accepts for each publish property the
 * spool writes (it writes no user_id, which the broker takes only as the
 * connection's own user, and no CC/BCC). Anything else is damage.
 */
const PROPERTY_TYPES: Record<string, (v: unknown) => boolean> = {
  expiration: (v) => typeof v === 'string' && /^\d{1,10}$/.test(v),
  mandatory: BOOLEAN,
  persistent: BOOLEAN,
  deliveryMode: (v) => BOOLEAN(v) || v === 1 || v === 2,
  contentType: SHORT,
  contentEncoding: SHORT,
  headers: (v) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && JSON.stringify(v).length <= MAX_HEADERS_JSON,
  priority: (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255,
  correlationId: SHORT,
  replyTo: SHORT,
  messageId: SHORT,
  timestamp: (v) => Number.isInteger(v) && (v as number) >= 0,
  type: SHORT,
  appId: SHORT,
};

/** Properties a file may hold only when amqplib can send them: a damaged record must not stop the spool. */
function isPublishProperties(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  return Object.entries(value).every(([key, v]) => v === undefined || PROPERTY_TYPES[key]?.(v) === true);
}

/** Why no whole record starts at `offset`, or `undefined` when one does. */
function damageAt(data: Buffer, offset: number): string | undefined {
  if (data.length - offset < HEADER_BYTES) return 'truncated record header';
  if (!data.subarray(offset, offset + 4).equals(MAGIC)) return 'no record starts here';
  const length = data.readUInt32BE(offset + 4);
  const end = offset + HEADER_BYTES + length;
  if (end > data.length) return `truncated record (${data.length - offset - HEADER_BYTES} of ${length} bytes)`;
  if (crc32(data.subarray(offset + HEADER_BYTES, end)) !== data.readUInt32BE(offset + 8)) return 'checksum mismatch';
  return undefined;
}
