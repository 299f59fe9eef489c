// Every body publish() writes, checked by the readers real OS2mo consumers run:
// json.loads, uuid.UUID and datetime.fromisoformat on every Python 3.7+ on the
// machine (before 3.11 it refuses Z, +0200, +02 and fractions of other than 3 or
// 6 digits), and ramqp's pydantic model (pydantic 1 refuses +02:00:00 and a bare
// date); the AMQP subsystem's bodies by FastRAMQPI's PayloadUUID; and ramqpRefusal
// against ramqp's model itself. `scripts/python-peers.sh ensure` (run by `npm test`)
// installs the Debian parts.
import { TestingModule } from '@nestjs/testing';
import type { ConsumeMessage } from 'amqplib';
import {
  MO_CHANGE_OBJECT_TYPES,
  MoEventParseError,
  MoEventValidationError,
  MoEventsService,
  MoPublishResult,
  MoVocabulary,
  allMoRoutingKeys,
  parseMoChange,
  parseMoEvent,
} from '../../lib';
import { ramqpRefusal } from '../../lib/events/ramqp-rules';
import { bootApp } from '../support/app';
import { DEBIAN_PYTHON, fromIsoformatPythons, runPeer } from '../support/python';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const OBJECT = '5e2a5b2b-8d5e-4c1e-9a53-0b8c2f3d4e5f';

interface Answer<T = string | null> {
  python: string;
  answers: T[];
}

// Every shape of time text publish() reads: dates, both separators, every clock
// precision, every offset spelling. Some cannot be kept in the one shape.
const DATES = ['2021-07-27', '2021-01-27', '2020-02-29', '0001-01-01', '9999-12-31'];
const FRACTION = '132025789';
const CLOCKS = [
  '13:02',
  '13:02:15',
  ...Array.from({ length: 9 }, (_, n) => `13:02:15.${FRACTION.slice(0, n + 1)}`),
  '13:02:15.132025000',
  '00:00:00',
  '00:00:00.000',
  '23:59:59.999999',
];
const OFFSETS = [
  '',
  'Z',
  '+02',
  '+0200',
  '+02:00',
  '+020000',
  '+02:00:00',
  '-09:30',
  '-0930',
  '-00:00',
  '+05:45',
  '+23:59',
  '+01:30:15',
  '-00:00:01',
];
const TIME_SHAPES = DATES.flatMap((date) =>
  ['T', ' '].flatMap((sep) => CLOCKS.flatMap((clock) => OFFSETS.map((offset) => `${date}${sep}${clock}${offset}`))),
);
/** What the one shape cannot hold without changing the time: offset seconds, digits beyond the microsecond. */
const UNKEEPABLE = (shape: string) => /[+-]\d\d:\d\d:(?!00)\d\d$/.test(shape) || /\.\d{6}[1-9]/.test(shape);

// Zones with the offsets that trip writers up: DST, half and three-quarter hours,
// a half-hour DST shift, DST starting at midnight.
const ZONES = [
  'UTC',
  'Europe/Copenhagen',
  'America/St_Johns',
  'Asia/Kathmandu',
  'Australia/Lord_Howe',
  'America/Sao_Paulo',
  'Pacific/Chatham',
];

/** Instants across 1972-2037 (where every zone database agrees), and the tricky ones. */
function instants(): number[] {
  const picked = [
    Date.parse('2021-07-26T22:00:00Z'),
    Date.parse('2021-03-28T00:59:59.999Z'),
    Date.parse('2021-03-28T01:00:00Z'),
    Date.parse('2021-10-31T00:30:00Z'),
    Date.parse('2021-10-31T01:30:00.001Z'),
    Date.parse('2018-11-04T02:59:59.999Z'),
    Date.parse('2018-11-04T03:00:00Z'),
    Date.now(),
  ];
  // A fixed pseudo-random spread (the same every run), with zero, one and three-digit milliseconds.
  let seed = 20210727;
  const start = Date.parse('1972-01-01T00:00:00Z');
  const span = Date.parse('2037-12-31T00:00:00Z') - start;
  for (let i = 0; i < 120; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const t = start + Math.floor((seed / 2 ** 31) * span);
    picked.push(i % 3 === 0 ? t - (t % 1000) : i % 3 === 1 ? t - (t % 1000) + 1 : t);
  }
  return picked;
}

const apps: TestingModule[] = [];
async function publisher(vocabulary: MoVocabulary, timeZone = 'UTC'): Promise<MoEventsService> {
  // AMQP off: publish() validates and writes the body exactly as it would send it.
  const app = await bootApp({ vocabulary, timeZone });
  apps.push(app);
  return app.get(MoEventsService);
}

afterAll(async () => {
  for (const app of apps) await app.close();
});

interface Published {
  readonly label: string;
  readonly body: string;
}

async function publish(
  events: MoEventsService,
  routingKey: string,
  options: { time?: Date | string; objectUuid?: string },
): Promise<MoPublishResult> {
  const [s, o, a] = routingKey.split('.') as never[];
  return events.publish(s, o, a, UUID, options);
}

/** The readers' refusals, each with what was published; empty when every reader read every body. */
function refusals(bodies: readonly Published[], answer: Answer): string[] {
  return answer.answers.flatMap((a, i) => (a === null ? [] : [`${bodies[i].label}: ${bodies[i].body}: ${a}`]));
}

describe('bodies as Python readers read them', () => {
  const bodies: Published[] = [];
  const shapes = { accepted: [] as { sent: string; written: string }[], refused: [] as string[] };

  beforeAll(async () => {
    const os2mo = await publisher('os2mo');
    const seed = await publisher('seed');
    // Every routing key of both vocabularies, with the default time (now).
    for (const key of allMoRoutingKeys('os2mo')) {
      bodies.push({ label: key, body: (await publish(os2mo, key, { objectUuid: OBJECT })).body });
    }
    for (const key of allMoRoutingKeys('seed')) {
      bodies.push({ label: key, body: (await publish(seed, key, {})).body });
      bodies.push({ label: `${key} with object_uuid`, body: (await publish(seed, key, { objectUuid: OBJECT })).body });
    }
    // Every time shape, in the os2mo vocabulary (ramqp's model needs object_uuid).
    for (const time of TIME_SHAPES) {
      try {
        const { body } = await publish(os2mo, 'employee.engagement.edit', { time, objectUuid: OBJECT });
        bodies.push({ label: `time ${time}`, body });
        shapes.accepted.push({ sent: time, written: JSON.parse(body).time });
      } catch (err) {
        if (!(err instanceof MoEventValidationError)) throw err;
        shapes.refused.push(time);
      }
    }
    // Bare dates and Dates in zones.
    for (const zone of ZONES) {
      const events = await publisher('os2mo', zone);
      for (const date of ['2021-07-27', '2021-01-27', '2018-11-04']) {
        bodies.push({
          label: `date ${date} in ${zone}`,
          body: (await publish(events, 'org_unit.kle.create', { time: date, objectUuid: OBJECT })).body,
        });
      }
      for (const t of instants()) {
        const { body } = await publish(events, 'org_unit.owner.refresh', { time: new Date(t), objectUuid: OBJECT });
        bodies.push({ label: `Date ${new Date(t).toISOString()} in ${zone}`, body });
      }
    }
  });

  it('publishes every time shape but those it cannot keep, which it refuses', () => {
    expect(TIME_SHAPES).toHaveLength(5 * 2 * 15 * 14);
    expect(shapes.refused).toEqual(TIME_SHAPES.filter(UNKEEPABLE));
    expect(shapes.accepted).toHaveLength(1_440);
    // The one shape: seconds always, six fraction digits or none, ±HH:MM or naive.
    for (const { written } of shapes.accepted) {
      expect(written).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?([+-]\d\d:\d\d)?$/);
    }
  });

  it('are all read by json.loads, uuid.UUID and fromisoformat on every Python 3.7+ here, the oldest before 3.11', async () => {
    const pythons = fromIsoformatPythons();
    const oldest = pythons[0];
    // The strict readers are the point: without a Python before 3.11 this would test nothing they refuse.
    expect(oldest ? `3.${oldest.version[1]}` : 'none').toMatch(/^3\.(7|8|9|10)$/);
    expect(pythons.some((p) => p.version[1] === 8)).toBe(true);
    for (const python of pythons) {
      const answer = await runPeer<Answer>(python.path, 'readers.py', ['read'], bodies);
      expect(answer.answers).toHaveLength(bodies.length);
      expect({ python: answer.python, refused: refusals(bodies, answer) }).toEqual({
        python: answer.python,
        refused: [],
      });
    }
  });

  it('are all read by ramqp’s pydantic model (uuid: UUID, object_uuid: UUID, time: datetime)', async () => {
    const answer = await runPeer<Answer>(DEBIAN_PYTHON, 'readers.py', ['read', '--pydantic'], bodies);
    expect(answer.answers).toHaveLength(bodies.length);
    expect(refusals(bodies, answer)).toEqual([]);
  });

  it('would be refused there in the shapes callers pass: the readers do refuse what they should', async () => {
    // The same readers on the raw shapes: proof that the checks above can fail.
    const raw = ['2021-07-27T00:00:00Z', '2021-07-27T00:00:00+0200', '2021-07-27T00:00:00.1+02:00'].map((time) => ({
      label: time,
      body: `{"uuid": "${UUID}", "object_uuid": "${OBJECT}", "time": "${time}"}`,
    }));
    const strict = fromIsoformatPythons().find((p) => p.version[1] === 8) ?? fromIsoformatPythons()[0];
    const python38 = await runPeer<Answer>(strict.path, 'readers.py', ['read'], raw);
    expect(refusals(raw, python38)).toHaveLength(3);
    const pydantic = await runPeer<Answer>(
      DEBIAN_PYTHON,
      'readers.py',
      ['read', '--pydantic'],
      [
        { label: 'bare date', body: `{"uuid": "${UUID}", "object_uuid": "${OBJECT}", "time": "2021-07-27"}` },
        { label: 'no object_uuid', body: `{"uuid": "${UUID}", "time": "2021-07-27T00:00:00+02:00"}` },
        {
          label: '+02:00:00',
          body: `{"uuid": "${UUID}", "object_uuid": "${OBJECT}", "time": "2021-07-27T00:00:00+02:00:00"}`,
        },
      ],
    );
    expect(pydantic.answers.map((a) => a !== null)).toEqual([true, false, true]);
  });

  it('write each time string as the same instant with the same offset (Python 3.11 reads both)', async () => {
    const answer = await runPeer<Answer>(
      DEBIAN_PYTHON,
      'readers.py',
      ['same'],
      shapes.accepted.map((s) => ({ ...s, zone: 'UTC' })),
    );
    const differing = answer.answers.flatMap((a, i) =>
      a === null ? [] : [`${shapes.accepted[i].sent} -> ${shapes.accepted[i].written}: ${a}`],
    );
    expect(differing).toEqual([]);
  });

  it('write a bare date as midnight in the zone and a Date exactly as Python’s isoformat() writes it', async () => {
    const dated: { label: string; time: string; micros: number; zone: string }[] = [];
    for (const zone of ZONES) {
      const events = await publisher('seed', zone);
      for (const t of instants()) {
        const { body } = await publish(events, 'employee.engagement.create', { time: new Date(t) });
        dated.push({
          label: `${new Date(t).toISOString()} in ${zone}`,
          time: JSON.parse(body).time,
          micros: t * 1000,
          zone,
        });
      }
    }
    // The extremes of Python's range, in UTC.
    const utc = await publisher('seed');
    for (const iso of ['0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']) {
      const t = Date.parse(iso);
      const { body } = await publish(utc, 'employee.engagement.create', { time: new Date(t) });
      dated.push({ label: iso, time: JSON.parse(body).time, micros: t * 1000, zone: 'UTC' });
    }
    const python = await runPeer<Answer<string>>(DEBIAN_PYTHON, 'readers.py', ['isoformat'], dated);
    const mismatches = dated.flatMap((d, i) =>
      d.time === python.answers[i] ? [] : [`${d.label}: wrote ${d.time}, Python ${python.answers[i]}`],
    );
    expect(mismatches).toEqual([]);
    expect(dated.filter((d) => !d.time.includes('.')).length).toBeGreaterThan(0); // zero fractions left out

    const dates = await runPeer<Answer>(
      DEBIAN_PYTHON,
      'readers.py',
      ['same'],
      await Promise.all(
        ZONES.flatMap((zone) =>
          ['2021-07-27', '2021-01-27', '2018-11-04'].map(async (sent) => ({
            sent,
            zone,
            written: JSON.parse(
              (await publish(await publisher('seed', zone), 'employee.it.create', { time: sent })).body,
            ).time,
          })),
        ),
      ),
    );
    expect(dates.answers.filter((a) => a !== null)).toEqual([]);
  });
});

/** A delivery of `content` from the events exchange, as a consumer gets it. */
function delivery(content: Buffer, routingKey: string): ConsumeMessage {
  return {
    content,
    fields: { routingKey, exchange: 'os2mo', redelivered: false, deliveryTag: 1, consumerTag: 'peer' },
    properties: { headers: {} },
  } as unknown as ConsumeMessage;
}

const base64 = (bytes: Buffer) => bytes.toString('base64');

describe('OS2mo AMQP-subsystem bodies as FastRAMQPI reads them (PayloadUUID: pydantic 1 parse_raw_as(UUID, body))', () => {
  // ramqp 9's MO routing keys of the subsystem (ramqp.mo): OS2mo's object types at its head.
  const RAMQP_KEYS = [
    'address',
    'association',
    'class',
    'engagement',
    'facet',
    'itsystem',
    'ituser',
    'kle',
    'leave',
    'manager',
    'org_unit',
    'owner',
    'person',
    'related_unit',
    'rolebinding',
  ];

  it('reads every body publishChange() writes, under a routing key that is the object type and one of ramqp 9’s', async () => {
    const events = await publisher('os2mo');
    const published: { objectType: string; routingKey: string; body: string }[] = [];
    for (const objectType of MO_CHANGE_OBJECT_TYPES) {
      for (const uuid of [UUID, OBJECT, UUID.toUpperCase(), '00000000-0000-0000-0000-000000000000']) {
        const result = await events.publishChange(objectType, uuid);
        expect(result).toMatchObject({ status: 'disabled', routingKey: objectType, body: `"${uuid.toLowerCase()}"` });
        published.push({ objectType, routingKey: result.routingKey, body: result.body });
      }
    }
    const answer = await runPeer<Answer>(
      DEBIAN_PYTHON,
      'readers.py',
      ['uuid-json'],
      published.map(({ routingKey, body }) => ({ routingKey, base64: base64(Buffer.from(body)) })),
    );
    expect(answer.answers).toHaveLength(published.length);
    const refused = [...new Set(published.filter((_, i) => answer.answers[i] !== null).map((p) => p.routingKey))];
    // role is OS2mo's word before 2024-03-14, which ramqp 9 no longer lists: all the others are ramqp 9's 15.
    expect(refused).toEqual(['role']);
    expect(MO_CHANGE_OBJECT_TYPES.filter((t) => t !== 'role')).toEqual(RAMQP_KEYS);
    // Without a routing key, the body alone: every one read, role's too.
    const bodies = await runPeer<Answer>(
      DEBIAN_PYTHON,
      'readers.py',
      ['uuid-json'],
      published.map(({ body }) => ({ body })),
    );
    expect(bodies.answers.filter((a) => a !== null)).toEqual([]);
  });

  it('refuses bare text as parseMoChange does; refuses nothing parseMoChange reads', async () => {
    const text = (t: string) => Buffer.from(t, 'utf8');
    const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
    const corpus: { label: string; bytes: Buffer }[] = [
      { label: 'bare text', bytes: text(UUID) },
      { label: 'bare text, upper case', bytes: text(UUID.toUpperCase()) },
      { label: 'a JSON object', bytes: text(`{"uuid": "${UUID}"}`) },
      { label: 'a JSON array', bytes: text(`["${UUID}"]`) },
      { label: 'a number', bytes: text('12345') },
      { label: 'null', bytes: text('null') },
      { label: 'empty', bytes: text('') },
      { label: 'a BOM before the JSON string', bytes: Buffer.concat([BOM, text(`"${UUID}"`)]) },
      { label: 'not UTF-8', bytes: Buffer.from([0x22, 0xff, 0x22]) },
      { label: 'a string, not a UUID', bytes: text('"c390b9a2"') },
      { label: 'the JSON string', bytes: text(`"${UUID}"`) },
      { label: 'upper case', bytes: text(`"${UUID.toUpperCase()}"`) },
      { label: 'whitespace around it', bytes: text(` \n"${UUID}"\r\n\t`) },
      { label: 'escaped', bytes: text(`"\\u0063${UUID.slice(1)}"`) },
      // What Python's uuid.UUID also takes, and parseMoChange does not (OS2mo writes str(uuid) only).
      { label: 'no hyphens', bytes: text(`"${UUID.replace(/-/g, '')}"`) },
      { label: 'braces', bytes: text(`"{${UUID}}"`) },
      { label: 'urn:uuid:', bytes: text(`"urn:uuid:${UUID}"`) },
    ];
    const ours = corpus.map(({ bytes }) => {
      try {
        parseMoChange(delivery(bytes, 'engagement'));
        return true;
      } catch (err) {
        if (!(err instanceof MoEventParseError)) throw err;
        return false;
      }
    });
    const fastramqpi = await runPeer<Answer>(
      DEBIAN_PYTHON,
      'readers.py',
      ['uuid-json'],
      corpus.map(({ bytes }) => ({ routingKey: 'engagement', base64: base64(bytes) })),
    );
    const verdicts = corpus.map(({ label }, i) => ({
      label,
      ours: ours[i],
      fastramqpi: fastramqpi.answers[i] === null,
    }));
    // The check above can fail: bare text is refused there, as here.
    expect(verdicts[0]).toEqual({ label: 'bare text', ours: false, fastramqpi: false });
    // Nothing this package reads is refused there.
    expect(verdicts.filter((v) => v.ours && !v.fastramqpi)).toEqual([]);
    // Read by both: OS2mo's own form and what JSON allows around it.
    expect(verdicts.filter((v) => v.ours).map((v) => v.label)).toEqual([
      'the JSON string',
      'upper case',
      'whitespace around it',
      'escaped',
    ]);
    // Stricter here only in the UUID spellings OS2mo never writes.
    expect(verdicts.filter((v) => !v.ours && v.fastramqpi).map((v) => v.label)).toEqual([
      'no hyphens',
      'braces',
      'urn:uuid:',
    ]);
  });
});

describe('ramqpRefusal (AMQP__VOCABULARY=os2mo) against ramqp’s pydantic 1 model itself', () => {
  it('refuses exactly the legacy bodies ramqp refuses, of every time shape this package reads, ±object_uuid, ±BOM', async () => {
    const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
    const times = [...DATES, ...TIME_SHAPES];
    const corpus: { label: string; bytes: Buffer }[] = [];
    for (const time of times) {
      for (const withObject of [true, false]) {
        // As json.dumps writes it: OS2mo's key order and separators.
        const json = withObject
          ? `{"uuid": "${UUID}", "object_uuid": "${OBJECT}", "time": "${time}"}`
          : `{"uuid": "${UUID}", "time": "${time}"}`;
        for (const bom of [false, true]) {
          const label = `${time}${withObject ? '' : ' without object_uuid'}${bom ? ' after a BOM' : ''}`;
          corpus.push({ label, bytes: bom ? Buffer.concat([BOM, Buffer.from(json)]) : Buffer.from(json) });
        }
      }
    }
    expect(corpus).toHaveLength((5 + 2_100) * 4);
    const unread: string[] = [];
    const ours = corpus.map(({ label, bytes }) => {
      // Every one is read by this package's reader; the question is only what ramqp would do.
      const message = delivery(bytes, 'employee.engagement.edit');
      let event;
      try {
        event = parseMoEvent(undefined, message);
      } catch (err) {
        unread.push(`${label}: ${(err as Error).message}`);
        return undefined;
      }
      return ramqpRefusal(bytes, event);
    });
    expect(unread).toEqual([]);
    const pydantic = await runPeer<Answer>(
      DEBIAN_PYTHON,
      'readers.py',
      ['ramqp'],
      corpus.map(({ bytes }) => ({ base64: base64(bytes) })),
    );
    expect(pydantic.answers).toHaveLength(corpus.length);
    const disagreements = corpus.flatMap(({ label }, i) => {
      const refusedHere = ours[i] !== undefined;
      const refusedThere = pydantic.answers[i] !== null;
      return refusedHere === refusedThere
        ? []
        : [
            `${label}: ramqpRefusal ${refusedHere ? `refuses (${ours[i]?.message})` : 'reads'}, ramqp ${refusedThere ? `refuses (${pydantic.answers[i]})` : 'reads'}`,
          ];
    });
    expect(disagreements).toEqual([]);
    // Both verdicts occur, and each of the four refusals names its field.
    const fields = new Map<string, number>();
    for (const refusal of ours) if (refusal) fields.set(refusal.field, (fields.get(refusal.field) ?? 0) + 1);
    const secondsOffset = times.filter((time) => /[+-]\d\d:?\d\d:?\d\d$/.test(time)).length;
    expect(Object.fromEntries(fields)).toEqual({
      body: times.length * 2, // every one after a BOM
      object_uuid: times.length, // without object_uuid, no BOM
      time: DATES.length + secondsOffset, // a bare date, an offset with seconds
    });
    expect(ours.filter((r) => r === undefined)).toHaveLength(times.length - DATES.length - secondsOffset);
  });
});
