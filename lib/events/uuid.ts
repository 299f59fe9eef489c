const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const UUID_ALLOWED = 'a UUID in canonical 8-4-4-4-12 hex form, e.g. "c390b9a2-7202-48e6-972b-ce36a90065c4"';

/**
 * The canonical lower-case form of a UUID string, or `undefined` when the value is
 * not one. Upper-case input is accepted (RFC 9562: case-insensitive on input).
 */
export function normalizeUuid(value: unknown): string | undefined {
  if (typeof value !== 'string' || !CANONICAL_UUID.test(value)) return undefined;
  return value.toLowerCase();
}
