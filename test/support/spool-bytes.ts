import { crc32 } from 'node:zlib';

/** Bytes framed as a spool record (MAGIC, length, CRC-32), whatever they hold: the checksum is right. */
export function framed(payload: string): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(12);
  header.write('MOS1', 0);
  header.writeUInt32BE(body.length, 4);
  header.writeUInt32BE(crc32(body), 8);
  return Buffer.concat([header, body]);
}
