/**
 * A time zone's UTC offset at an instant, and the instant a zone's wall-clock
 * time denotes, from Intl (cached per hour).
 */

/** A wall-clock time's milliseconds since the epoch, read as UTC. */
export function wallClockMs(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
): number {
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const d = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, ms));
  d.setUTCFullYear(year);
  return d.getTime();
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

const HOUR_MS = 3_600_000;
const MAX_CACHED_HOURS = 4_096;
/** Per zone: hour since the epoch -> the offset in force all that hour, or NaN when it changes within it. */
const hourlyOffsets = new Map<string, Map<number, number>>();

/**
 * The zone's UTC offset at instant `epochMs`, in whole seconds. Asking Intl costs
 * microseconds, so the answer is kept per hour: no zone changes its offset twice
 * within one hour, so an hour that starts and ends on the same offset has it throughout.
 */
export function offsetSecondsAt(epochMs: number, timeZone: string): number {
  if (timeZone === 'UTC') return 0;
  let hours = hourlyOffsets.get(timeZone);
  if (!hours) hourlyOffsets.set(timeZone, (hours = new Map()));
  const hour = Math.floor(epochMs / HOUR_MS);
  let offset = hours.get(hour);
  if (offset === undefined) {
    const start = exactOffsetSecondsAt(hour * HOUR_MS, timeZone);
    const end = exactOffsetSecondsAt((hour + 1) * HOUR_MS - 1_000, timeZone);
    offset = start === end ? start : Number.NaN;
    if (hours.size >= MAX_CACHED_HOURS) hours.clear();
    hours.set(hour, offset);
  }
  return Number.isNaN(offset) ? exactOffsetSecondsAt(epochMs, timeZone) : offset;
}

export function exactOffsetSecondsAt(epochMs: number, timeZone: string): number {
  const wholeSecond = Math.floor(epochMs / 1000) * 1000;
  let year = 0;
  let month = 1;
  let day = 1;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let bc = false;
  for (const part of formatterFor(timeZone).formatToParts(wholeSecond)) {
    switch (part.type) {
      case 'year':
        year = +part.value;
        break;
      case 'month':
        month = +part.value;
        break;
      case 'day':
        day = +part.value;
        break;
      case 'hour':
        hour = +part.value;
        break;
      case 'minute':
        minute = +part.value;
        break;
      case 'second':
        second = +part.value;
        break;
      case 'era':
        bc = part.value === 'BC';
        break;
    }
  }
  const wall = wallClockMs(bc ? 1 - year : year, month, day, hour, minute, second, 0);
  return Math.round((wall - wholeSecond) / 1000);
}

/**
 * The instant a zone's wall-clock time denotes. In a gap or overlap around a
 * daylight-saving change it picks what Python's zoneinfo picks with fold=0: the
 * offset in force before the change.
 */
export function zonedWallClockToEpochMs(wallMs: number, timeZone: string): number {
  if (timeZone === 'UTC') return wallMs;
  const DAY = 86_400_000;
  const before = offsetSecondsAt(wallMs - DAY, timeZone) * 1000;
  const after = offsetSecondsAt(wallMs + DAY, timeZone) * 1000;
  if (before === after) return wallMs - before;
  const early = wallMs - before;
  if (offsetSecondsAt(early, timeZone) * 1000 === before) return early;
  const late = wallMs - after;
  if (offsetSecondsAt(late, timeZone) * 1000 === after) return late;
  return early;
}
