import { normalizeMoTime, formatMoTime, parseMoTime } from '../../lib';
import { exactOffsetSecondsAt, offsetSecondsAt } from '../../lib/events/zone-offset';

const CPH = 'Europe/Copenhagen';

describe('formatMoTime', () => {
  it('writes what Python’s isoformat() gives an aware UTC datetime', () => {
    expect(formatMoTime(new Date('2019-03-24T13:02:15.132Z'))).toBe('2019-03-24T13:02:15.132000+00:00');
  });

  it('formats times within one second, and either side of it, each correctly', () => {
    const texts = [
      '2021-07-27T10:00:00.999Z',
      '2021-07-27T10:00:01.000Z',
      '2021-07-27T10:00:01.007Z',
      '2021-07-27T10:00:00.010Z',
    ];
    expect(texts.map((iso) => formatMoTime(new Date(iso)))).toEqual([
      '2021-07-27T10:00:00.999000+00:00',
      '2021-07-27T10:00:01+00:00',
      '2021-07-27T10:00:01.007000+00:00',
      '2021-07-27T10:00:00.010000+00:00',
    ]);
  });

  it('writes six fraction digits, none when they are zero (as Python), and never Z', () => {
    expect(formatMoTime(new Date('2021-07-27T00:00:00Z'))).toBe('2021-07-27T00:00:00+00:00');
    expect(formatMoTime(new Date('2021-07-27T00:00:00.001Z'))).toBe('2021-07-27T00:00:00.001000+00:00');
    expect(formatMoTime(new Date('2021-07-27T00:00:00.5Z'), 'Europe/Copenhagen')).toBe(
      '2021-07-27T02:00:00.500000+02:00',
    );
  });

  it('writes summer and winter time in Europe/Copenhagen', () => {
    expect(formatMoTime(new Date('2021-07-26T22:00:00Z'), CPH)).toBe('2021-07-27T00:00:00+02:00');
    expect(formatMoTime(new Date('2021-01-26T23:00:00Z'), CPH)).toBe('2021-01-27T00:00:00+01:00');
  });

  it('follows the spring daylight-saving change to the millisecond', () => {
    // 2021-03-28 02:00 local (01:00Z) jumps to 03:00.
    expect(formatMoTime(new Date('2021-03-28T00:59:59.999Z'), CPH)).toBe('2021-03-28T01:59:59.999000+01:00');
    expect(formatMoTime(new Date('2021-03-28T01:00:00.000Z'), CPH)).toBe('2021-03-28T03:00:00+02:00');
  });

  it('tells the two 02:30s of the autumn change apart by their offsets', () => {
    // 2021-10-31 03:00 local (01:00Z) falls back to 02:00.
    expect(formatMoTime(new Date('2021-10-31T00:30:00Z'), CPH)).toBe('2021-10-31T02:30:00+02:00');
    expect(formatMoTime(new Date('2021-10-31T01:30:00Z'), CPH)).toBe('2021-10-31T02:30:00+01:00');
  });

  it('writes negative offsets and odd historical offsets as Python does', () => {
    expect(formatMoTime(new Date('2020-01-01T12:00:00Z'), 'America/St_Johns')).toBe('2020-01-01T08:30:00-03:30');
    // Liberia kept Monrovia Mean Time, UTC-00:44:30, until 1972.
    expect(formatMoTime(new Date('1970-01-01T00:00:00Z'), 'Africa/Monrovia')).toBe('1969-12-31T23:15:30-00:44:30');
  });

  it('covers Python’s years 0001 to 9999 and nothing outside them', () => {
    expect(formatMoTime(new Date('0001-01-01T00:00:00Z'))).toBe('0001-01-01T00:00:00+00:00');
    expect(formatMoTime(new Date('9999-12-31T23:59:59.999Z'))).toBe('9999-12-31T23:59:59.999000+00:00');
    expect(formatMoTime(new Date('+010000-01-01T00:00:00Z'))).toBeUndefined();
    expect(formatMoTime(new Date('0000-12-31T23:59:59Z'))).toBeUndefined();
    // In Copenhagen the last instant of 9999 UTC is already year 10000.
    expect(formatMoTime(new Date('9999-12-31T23:30:00Z'), CPH)).toBeUndefined();
    expect(formatMoTime(new Date(Number.NaN))).toBeUndefined();
  });
});

describe('parseMoTime', () => {
  it('reads a time with an offset', () => {
    expect(parseMoTime('2021-07-27T00:00:00+02:00')).toEqual({
      epochMs: Date.parse('2021-07-26T22:00:00Z'),
      extraNanos: 0,
      offsetSeconds: 7200,
    });
  });

  it('reads Z, and offsets written without a colon or minutes', () => {
    expect(parseMoTime('2019-03-24T13:02:15Z')?.epochMs).toBe(Date.parse('2019-03-24T13:02:15Z'));
    expect(parseMoTime('2019-03-24T13:02:15-0330')?.offsetSeconds).toBe(-12600);
    expect(parseMoTime('2019-03-24T13:02:15+01')?.offsetSeconds).toBe(3600);
  });

  it('reads the seed’s naive example in UTC by default, keeping the microseconds', () => {
    expect(parseMoTime('2019-03-24T13:02:15.132025')).toEqual({
      epochMs: Date.parse('2019-03-24T13:02:15.132Z'),
      extraNanos: 25_000,
      offsetSeconds: null,
    });
  });

  it('reads a naive time in the configured zone', () => {
    expect(parseMoTime('2021-07-27T00:00:00', CPH)?.epochMs).toBe(Date.parse('2021-07-26T22:00:00Z'));
    expect(parseMoTime('2021-01-27T00:00:00', CPH)?.epochMs).toBe(Date.parse('2021-01-26T23:00:00Z'));
  });

  it('reads naive times in a daylight-saving gap or overlap as Python’s fold=0 does', () => {
    // 02:30 does not exist on 2021-03-28: the offset before the change (+01:00) applies.
    expect(parseMoTime('2021-03-28T02:30:00', CPH)?.epochMs).toBe(Date.parse('2021-03-28T01:30:00Z'));
    // 02:30 happens twice on 2021-10-31: the first one (+02:00).
    expect(parseMoTime('2021-10-31T02:30:00', CPH)?.epochMs).toBe(Date.parse('2021-10-31T00:30:00Z'));
  });

  it('reads a date alone as midnight, a space separator, and nine fraction digits', () => {
    expect(parseMoTime('2021-07-27')?.epochMs).toBe(Date.parse('2021-07-27T00:00:00Z'));
    expect(parseMoTime('2021-07-27 10:00:00+00:00')?.epochMs).toBe(Date.parse('2021-07-27T10:00:00Z'));
    expect(parseMoTime('2021-07-27T10:00:00.123456789Z')).toMatchObject({ extraNanos: 456_789 });
  });

  it('holds far-future and far-past times', () => {
    expect(parseMoTime('9999-12-31T23:59:59.999999+00:00')?.epochMs).toBe(Date.parse('9999-12-31T23:59:59.999Z'));
    expect(parseMoTime('0001-01-01T00:00:00')?.epochMs).toBe(Date.parse('0001-01-01T00:00:00Z'));
  });

  it('reads back everything formatMoTime writes', () => {
    for (const iso of ['2019-03-24T13:02:15.132Z', '2021-10-31T01:30:00Z', '1890-06-01T00:00:00.5Z']) {
      const date = new Date(iso);
      expect(parseMoTime(formatMoTime(date, CPH))?.epochMs).toBe(date.getTime());
    }
  });

  it.each([
    '2019-02-29T00:00:00',
    '2020-02-30',
    '2019-13-01',
    '2019-03-24T24:00:00',
    '2019-03-24T13:60:00',
    '2019-03-24T13:02:60',
    '2019-03-24T13:02:15+24:00',
    '2019-03-24T13:02:15.',
    '2019-03-24T13:02:15.1234567890',
    '2019-03-24T13',
    '2019-03-24t13:02:15',
    '0000-01-01T00:00:00',
    '20190324T130215',
    '24/03/2019',
    'now',
    '',
    ' 2019-03-24',
    '2019-03-24T13:02:15.132025+00:00' + ' '.repeat(40),
    1553432535,
    null,
    undefined,
    new Date(),
  ])('returns undefined, never throws, for %p', (text) => {
    expect(parseMoTime(text)).toBeUndefined();
  });

  it('accepts every IANA zone offset the runtime knows', () => {
    expect(offsetSecondsAt(Date.parse('2021-07-27T00:00:00Z'), 'Asia/Kolkata')).toBe(19_800);
    expect(offsetSecondsAt(Date.parse('2021-07-27T00:00:00Z'), 'UTC')).toBe(0);
  });

  it.each(['Europe/Copenhagen', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'America/St_Johns'])(
    'keeps per-hour offsets that agree with Intl through 2021, and minute by minute around each change, in %s',
    (zone) => {
      const DAY = 86_400_000;
      const start = Date.parse('2021-01-01T00:00:00Z');
      const points: number[] = [];
      for (let t = start; t < start + 365 * DAY; t += 3_600_000 + 433_000) points.push(t);
      for (let day = start; day < start + 365 * DAY; day += DAY) {
        if (exactOffsetSecondsAt(day, zone) === exactOffsetSecondsAt(day + DAY, zone)) continue;
        for (let t = day; t < day + DAY; t += 61_000) points.push(t);
      }
      for (const t of points) expect(offsetSecondsAt(t, zone)).toBe(exactOffsetSecondsAt(t, zone));
    },
  );
});

describe('normalizeMoTime', () => {
  it.each([
    ['2021-07-27T00:00:00+02:00', '2021-07-27T00:00:00+02:00'],
    ['2021-07-27T00:00:00Z', '2021-07-27T00:00:00+00:00'],
    ['2021-07-27T00:00:00-00:00', '2021-07-27T00:00:00+00:00'],
    ['2021-07-27T00:00:00+0200', '2021-07-27T00:00:00+02:00'],
    ['2021-07-27T00:00:00-02', '2021-07-27T00:00:00-02:00'],
    ['2021-07-27T00:00:00+05:45:00', '2021-07-27T00:00:00+05:45'],
    ['2021-07-27T00:00:00.5', '2021-07-27T00:00:00.500000'],
    ['2021-07-27T00:00:00.000000', '2021-07-27T00:00:00'],
    ['2021-07-27T00:00:00.123456000+01:00', '2021-07-27T00:00:00.123456+01:00'],
    ['2021-07-27 23:59', '2021-07-27T23:59:00'],
    ['2021-07-27', '2021-07-27T00:00:00+00:00'],
    ['0001-01-01T00:00:00+01:00', '0001-01-01T00:00:00+01:00'],
  ])('writes %p as %p', (text, written) => {
    expect(normalizeMoTime(text)).toBe(written);
    // The same instant, and the same offset where one was written (-00:00 is UTC, as in Python).
    const read = parseMoTime(text)!;
    const back = parseMoTime(written)!;
    expect([back.epochMs, back.extraNanos]).toEqual([read.epochMs, read.extraNanos]);
    if (text.length > 10) expect(back.offsetSeconds).toBe(read.offsetSeconds === null ? null : read.offsetSeconds + 0);
  });

  it('places a bare date at midnight in the zone, taking the offset before a change at midnight (Python’s fold=0)', () => {
    expect(normalizeMoTime('2021-07-27', CPH)).toBe('2021-07-27T00:00:00+02:00');
    // São Paulo's clocks went from 00:00 to 01:00 on 2018-11-04.
    expect(normalizeMoTime('2018-11-04', 'America/Sao_Paulo')).toBe('2018-11-04T00:00:00-03:00');
  });

  it.each([
    '2021-07-27T00:00:00+01:30:15',
    '2021-07-27T00:00:00.1234567',
    '2021-07-27T00:00:00.123456001Z',
    '1890-06-01',
    '2019-02-29',
    'now',
    42,
  ])('returns undefined for %p, which the one shape cannot hold unchanged', (text) => {
    expect(normalizeMoTime(text, typeof text === 'string' && text.startsWith('1890') ? CPH : 'UTC')).toBeUndefined();
  });
});
