/**
 * Time text of MO messages.
 *
 * Writing: what Python's `datetime.isoformat()` gives the same aware datetime,
 * `2019-03-24T13:02:15.132000+00:00`, or `2021-07-27T00:00:00+02:00` when the
 * fraction is zero: an explicit `±HH:MM` offset, never `Z`. That one shape is
 * what every known reader accepts: Python 3.7+'s `fromisoformat` (before 3.11
 * it refuses `Z`, `+0200`, `+02` and fractions of other than 3 or 6 digits),
 * pydantic 1 (ramqp; it refuses `+02:00:00` and a bare date) and pydantic 2.
 *
 * Reading: ISO 8601 extended format with an offset, with `Z`, or naive (read in
 * a configured zone, as the seed's own example `2019-03-24T13:02:15.132025` is).
 */

import { offsetSecondsAt, wallClockMs, zonedWallClockToEpochMs } from './zone-offset';

/** The parts of an ISO 8601 time that matter to MO consumers and the delay agent. */
export interface ParsedMoTime {
  /** Milliseconds since the epoch, rounded down. */
  readonly epochMs: number;
  /** Nanoseconds beyond `epochMs` (0-999,999), so "due" can be exact. */
  readonly extraNanos: number;
  /** The offset written in the text, in seconds east of UTC; `null` for a naive time. */
  readonly offsetSeconds: number | null;
}

// Python's datetime range, which is what the consumers can represent.
const MIN_YEAR = 1;
const MAX_YEAR = 9999;
export const TIME_TEXT_ALLOWED =
  'an ISO 8601 date or date-time such as "2019-03-24T13:02:15.132025+01:00", with an offset, "Z" or none, years 0001-9999';

/** What publishing accepts: what reading accepts, less what cannot be written in the one shape without changing it. */
export const TIME_TEXT_PUBLISH_ALLOWED =
  `${TIME_TEXT_ALLOWED}; an offset in whole minutes (not "+01:30:15"), ` +
  'and at most 6 fraction digits (microseconds; more only when the extra digits are 0)';

const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+-])(\d{2})(?::?(\d{2})(?::?(\d{2}))?)?)?)?$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1];
}

/** The fields of ISO 8601 time text, range-checked; the offset undefined when naive. */
interface IsoFields {
  readonly date: string;
  readonly year: number;
  readonly month: number;
  readonly day: number;
  /** False for a bare date. */
  readonly hasTime: boolean;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  /** The fraction's digits as written ('' when none). */
  readonly fraction: string;
  /** Seconds east of UTC; null when naive. */
  readonly offsetSeconds: number | null;
}

function matchIsoTime(text: unknown): IsoFields | undefined {
  if (typeof text !== 'string' || text.length > 64) return undefined;
  const m = ISO_TIME.exec(text);
  if (!m) return undefined;
  const year = +m[1];
  const month = +m[2];
  const day = +m[3];
  const hour = m[4] === undefined ? 0 : +m[4];
  const minute = m[5] === undefined ? 0 : +m[5];
  const second = m[6] === undefined ? 0 : +m[6];
  if (year < MIN_YEAR || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    return undefined;
  }
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetSeconds: number | null = null;
  if (m[8] === 'Z') {
    offsetSeconds = 0;
  } else if (m[9] !== undefined) {
    const oh = +m[10];
    const om = m[11] === undefined ? 0 : +m[11];
    const os = m[12] === undefined ? 0 : +m[12];
    if (oh > 23 || om > 59 || os > 59) return undefined;
    offsetSeconds = (m[9] === '-' ? -1 : 1) * (oh * 3600 + om * 60 + os);
  }
  return {
    date: text.slice(0, 10),
    year,
    month,
    day,
    hasTime: m[4] !== undefined,
    hour,
    minute,
    second,
    fraction: m[7] ?? '',
    offsetSeconds,
  };
}

/**
 * Parses ISO 8601 time text; returns `undefined` for anything else (never throws).
 * A naive time is read as wall-clock time in `timeZone` (an IANA name, default UTC).
 */
export function parseMoTime(text: unknown, timeZone = 'UTC'): ParsedMoTime | undefined {
  const f = matchIsoTime(text);
  if (!f) return undefined;
  const fraction = f.fraction.padEnd(9, '0');
  const ms = +fraction.slice(0, 3);
  const extraNanos = +fraction.slice(3);
  const wallMs = wallClockMs(f.year, f.month, f.day, f.hour, f.minute, f.second, ms);
  const epochMs =
    f.offsetSeconds === null ? zonedWallClockToEpochMs(wallMs, timeZone) : wallMs - f.offsetSeconds * 1000;
  return { epochMs, extraNanos, offsetSeconds: f.offsetSeconds };
}

/**
 * Time text as publishing writes it: the same instant and the same offset in the
 * one shape every reader accepts, `YYYY-MM-DDTHH:MM:SS[.ffffff]±HH:MM`, exactly
 * as Python's `isoformat()` writes that datetime. `Z` becomes `+00:00`, `+0200`
 * and `+02` become `+02:00`, a fraction gets six digits (none when it is zero), a
 * bare date is midnight in `timeZone`, and a naive time stays naive. Returns
 * `undefined` for text that is not ISO 8601, or that the shape cannot hold
 * without changing it: an offset with seconds, digits beyond the microsecond.
 *
 * ```ts
 * normalizeMoTime('2021-07-27T00:00:00Z') === '2021-07-27T00:00:00+00:00'
 * ```
 */
export function normalizeMoTime(text: unknown, timeZone = 'UTC'): string | undefined {
  const f = matchIsoTime(text);
  if (!f) return undefined;
  if (!f.hasTime) {
    // OS2mo's own times: midnight in its zone, with that zone's offset.
    const wallMs = wallClockMs(f.year, f.month, f.day, 0, 0, 0, 0);
    const offsetSeconds = (wallMs - zonedWallClockToEpochMs(wallMs, timeZone)) / 1000;
    if (offsetSeconds % 60 !== 0) return undefined;
    return `${f.date}T00:00:00${formatOffset(offsetSeconds)}`;
  }
  if (f.offsetSeconds !== null && f.offsetSeconds % 60 !== 0) return undefined;
  if (f.fraction.length > 6 && !/^0+$/.test(f.fraction.slice(6))) return undefined;
  const micros = f.fraction.slice(0, 6).padEnd(6, '0');
  return (
    `${f.date}T${pad(f.hour, 2)}:${pad(f.minute, 2)}:${pad(f.second, 2)}` +
    (micros === '000000' ? '' : `.${micros}`) +
    (f.offsetSeconds === null ? '' : formatOffset(f.offsetSeconds))
  );
}

/**
 * Formats a Date as Python's `datetime.isoformat()` does for an aware datetime
 * in `timeZone`: `2021-07-27T00:00:00+02:00`, `2019-03-24T13:02:15.132000+00:00`
 * (six fraction digits, none when they are zero). Returns `undefined` for an
 * invalid Date or one outside the years 0001-9999 in that zone. (Like Python, it
 * writes the seconds of an offset that has them, a zone's local mean time before
 * about 1900; publishing refuses such a time, since pydantic cannot read it.)
 */
export function formatMoTime(date: Date, timeZone = 'UTC'): string | undefined {
  const t = date.getTime();
  if (Number.isNaN(t)) return undefined;
  if (timeZone === 'UTC') return formatUtc(t, date);
  const offsetSeconds = offsetSecondsAt(t, timeZone);
  const wall = new Date(t + offsetSeconds * 1000);
  const year = wall.getUTCFullYear();
  if (year < MIN_YEAR || year > MAX_YEAR) return undefined;
  return (
    `${pad(year, 4)}-${pad(wall.getUTCMonth() + 1, 2)}-${pad(wall.getUTCDate(), 2)}` +
    `T${pad(wall.getUTCHours(), 2)}:${pad(wall.getUTCMinutes(), 2)}:${pad(wall.getUTCSeconds(), 2)}` +
    `${FRACTIONS[wall.getUTCMilliseconds()]}${formatOffset(offsetSeconds)}`
  );
}

// Python writes the microseconds only when they are not zero: ".132000", or nothing.
const FRACTIONS = Array.from({ length: 1000 }, (_, ms) => (ms === 0 ? '' : `.${String(ms).padStart(3, '0')}000`));

// The hot path (every default `time` is now, in UTC): events published within the
// same second share everything up to the milliseconds, so that part is kept.
let utcSecond = Number.NaN;
let utcPrefix = '';

function formatUtc(t: number, date: Date): string | undefined {
  const second = Math.floor(t / 1000);
  if (second !== utcSecond) {
    const year = date.getUTCFullYear();
    if (year < MIN_YEAR || year > MAX_YEAR) return undefined;
    utcPrefix = date.toISOString().slice(0, 19); // "2019-03-24T13:02:15"
    utcSecond = second;
  }
  return `${utcPrefix}${FRACTIONS[t - second * 1000]}+00:00`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function formatOffset(offsetSeconds: number): string {
  const sign = offsetSeconds < 0 ? '-' : '+';
  const abs = Math.abs(offsetSeconds);
  const hm = `${sign}${pad(Math.floor(abs / 3600), 2)}:${pad(Math.floor(abs / 60) % 60, 2)}`;
  // Python writes seconds only for the odd historical offsets that have them.
  return abs % 60 === 0 ? hm : `${hm}:${pad(abs % 60, 2)}`;
}
