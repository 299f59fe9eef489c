import { Injectable, Type } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import { MoEvent, MoEventDecoratorError, MoEventValidationError, MoEventsService } from 'nestjs-mo-amqp';
import { MoAmqpTestingModule, MoEventsRecorder } from 'nestjs-mo-amqp/testing';
import { CapturingLogger } from '../support/capturing-logger';

const PERSON = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const UNIT = 'f494ad89-039d-478e-91f2-a63566554bd6';

interface Engagement {
  uuid: string;
  employeeUuid: string;
  orgUnitUuid: string;
}

@Injectable()
class EngagementService {
  @MoEvent('employee', 'engagement', 'create', { uuid: (e: Engagement) => e.employeeUuid })
  @MoEvent('org_unit', 'engagement', 'create', { uuid: (e: Engagement) => e.orgUnitUuid })
  async create(employeeUuid: string, orgUnitUuid: string): Promise<Engagement> {
    return { uuid: 'e1b3f2c4-5d6e-4f70-8a9b-0c1d2e3f4a5b', employeeUuid, orgUnitUuid };
  }

  @MoEvent('employee', 'engagement', 'update', { uuid: (e: Engagement) => e.employeeUuid })
  async fail(): Promise<Engagement> {
    throw new Error('the write failed');
  }
}

@Injectable()
class StandInForMo {
  @MoEvent('employee', 'engagement', 'update', {
    uuid: (e: Engagement) => e.employeeUuid,
    objectUuid: (e: Engagement) => e.uuid,
    change: true,
  })
  async edit(employeeUuid: string, orgUnitUuid: string): Promise<Engagement> {
    return { uuid: 'e1b3f2c4-5d6e-4f70-8a9b-0c1d2e3f4a5b', employeeUuid, orgUnitUuid };
  }
}

let app: TestingModule | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function boot(imports = [MoAmqpTestingModule.forRoot()], providers: Type[] = [EngagementService]) {
  const moduleRef = await Test.createTestingModule({ imports, providers }).setLogger(new CapturingLogger()).compile();
  try {
    await moduleRef.init();
  } catch (err) {
    await moduleRef.close().catch(() => undefined);
    throw err;
  }
  return (app = moduleRef);
}

describe('MoAmqpTestingModule', () => {
  it('records AMQP-subsystem messages apart from the events: publishChange and @MoEvent with change', async () => {
    const moduleRef = await boot([MoAmqpTestingModule.forRoot()], [StandInForMo]);
    const recorder = moduleRef.get(MoEventsRecorder);
    await moduleRef.get(MoEventsService).publishChange('rolebinding', UNIT.toUpperCase());
    await moduleRef.get(StandInForMo).edit(PERSON, UNIT);
    expect(recorder.routingKeys).toEqual(['employee.engagement.update']);
    expect(recorder.changes.map((c) => `${c.routingKey} ${c.body}`)).toEqual([
      `rolebinding "${UNIT}"`,
      'engagement "e1b3f2c4-5d6e-4f70-8a9b-0c1d2e3f4a5b"',
    ]);
    expect(recorder.expectChanged('rolebinding', UNIT).properties).toMatchObject({ persistent: true });
    expect(() => recorder.expectChanged('person')).toThrow(
      `Expected one AMQP-subsystem message person, found 0. Published:\n  rolebinding "${UNIT}"\n  engagement "e1b3f2c4`,
    );
    await expect(moduleRef.get(MoEventsService).publishChange('persn' as never, PERSON)).rejects.toThrow(
      MoEventValidationError,
    );
    expect(recorder.changes).toHaveLength(2);
    recorder.clear();
    expect([recorder.events, recorder.changes]).toEqual([[], []]);
  });

  it('records what @MoEvent would publish, in order, without a broker', async () => {
    const moduleRef = await boot();
    await moduleRef.get(EngagementService).create(PERSON, UNIT);
    const recorder = moduleRef.get(MoEventsRecorder);
    expect(recorder.routingKeys).toEqual(['employee.engagement.create', 'org_unit.engagement.create']);
    const [first] = recorder.events;
    expect(first).toMatchObject({
      exchange: 'os2mo',
      json: { uuid: PERSON },
      properties: { persistent: true, contentType: 'application/json', messageId: expect.any(String) },
    });
    expect(first.body).toBe(`{"uuid": "${PERSON}", "time": "${first.json.time}"}`);
    expect(recorder.expectPublished('org_unit.engagement.create', { uuid: UNIT }).json.uuid).toBe(UNIT);
  });

  it('publishes nothing when the method rejects, and says what was published when an expectation fails', async () => {
    const moduleRef = await boot();
    await expect(moduleRef.get(EngagementService).fail()).rejects.toThrow('the write failed');
    const recorder = moduleRef.get(MoEventsRecorder);
    expect(recorder.events).toEqual([]);
    expect(() => recorder.expectPublished('employee.engagement.update')).toThrow(
      'Expected one MO event employee.engagement.update, found 0. Published:\n  (none)',
    );
    await moduleRef.get(EngagementService).create(PERSON, UNIT);
    expect(() => recorder.expectPublished('employee.engagement.create', { uuid: UNIT })).toThrow(
      `employee.engagement.create {"uuid": "${PERSON}"`,
    );
    recorder.clear();
    expect(recorder.events).toEqual([]);
  });

  it('validates as in production: publish() refuses a bad event and records nothing', async () => {
    const moduleRef = await boot();
    const events = moduleRef.get(MoEventsService);
    await expect(events.publish('employee', 'it', 'create', 'not-a-uuid')).rejects.toBeInstanceOf(
      MoEventValidationError,
    );
    expect(moduleRef.get(MoEventsRecorder).events).toEqual([]);
    await expect(events.publish('employee', 'it', 'create', PERSON, { time: '2021-07-27' })).resolves.toMatchObject({
      status: 'confirmed',
      body: `{"uuid": "${PERSON}", "time": "2021-07-27T00:00:00+00:00"}`,
    });
    // Counted as in production: the refused one invalid, the recorded one published and confirmed.
    expect(events.counters).toMatchObject({ invalid: 1, published: 1, confirmed: 1, spooled: 0, failed: 0 });
  });

  it('takes the options of MoAmqpModule: the os2mo vocabulary refuses @MoEvent without objectUuid at start', async () => {
    const err = await boot([MoAmqpTestingModule.forRoot({ vocabulary: 'os2mo' })]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoEventDecoratorError);
  });

  it('lets jest.spyOn(events, "publish") after init() see @MoEvent calls', async () => {
    const moduleRef = await boot();
    const publish = jest.spyOn(moduleRef.get(MoEventsService), 'publish');
    await moduleRef.get(EngagementService).create(PERSON, UNIT);
    expect(publish).toHaveBeenCalledTimes(2);
    expect(publish).toHaveBeenCalledWith('employee', 'engagement', 'create', PERSON, {});
  });
});
