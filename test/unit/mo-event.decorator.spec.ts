import { RABBIT_HANDLER, RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Controller, Injectable, Post, Scope, SetMetadata, Type } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import {
  MoAmqpModule,
  MoAmqpModuleOptions,
  MoEvent,
  MoEventDecoratorError,
  MoEventsService,
  MoPublishError,
  MoPublishResult,
} from '../../lib';
import { CapturingLogger } from '../support/capturing-logger';

const PERSON = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const UNIT = 'f494ad89-039d-478e-91f2-a63566554bd6';
const ENGAGEMENT = '5e2a5b2b-8d5e-4c1e-9a53-0b8c2f3d4e5f';

type PublishArgs = Parameters<MoEventsService['publish']>;

let publish: jest.SpyInstance<Promise<MoPublishResult>, PublishArgs>;
let app: TestingModule | undefined;
let logger: CapturingLogger;

beforeEach(() => {
  // The real publish with AMQP disabled: validates, then reports `disabled`. No broker.
  publish = jest.spyOn(MoEventsService.prototype, 'publish');
  logger = new CapturingLogger();
});

afterEach(async () => {
  await app?.close();
  app = undefined;
  publish.mockRestore();
});

async function boot(providers: Type[], options: MoAmqpModuleOptions = {}, controllers: Type[] = []) {
  const moduleRef = await Test.createTestingModule({ imports: [MoAmqpModule.forRoot(options)], providers, controllers })
    .setLogger(logger)
    .compile();
  try {
    await moduleRef.init();
  } catch (err) {
    await moduleRef.close().catch(() => undefined);
    throw err;
  }
  app = moduleRef;
  return moduleRef;
}

function published(): string[] {
  return publish.mock.calls.map(([s, o, a, uuid, options]) => `${s}.${o}.${a} ${uuid} ${JSON.stringify(options)}`);
}

interface Engagement {
  uuid: string;
  employeeUuid: string;
  orgUnitUuid: string;
  validFrom?: string;
}

@Injectable()
class EngagementService {
  readonly prefix = 'engagement';
  calls: string[] = [];

  @MoEvent('employee', 'engagement', 'create', {
    uuid: (e: Engagement) => e.employeeUuid,
    time: (e: Engagement) => e.validFrom,
    objectUuid: (e: Engagement) => e.uuid,
  })
  @MoEvent('org_unit', 'engagement', 'create', { uuid: (e: Engagement) => e.orgUnitUuid })
  async create(employeeUuid: string, orgUnitUuid: string, validFrom?: string): Promise<Engagement> {
    this.calls.push('create');
    return { uuid: ENGAGEMENT, employeeUuid, orgUnitUuid, validFrom };
  }

  @MoEvent('employee', 'employee', 'update')
  async returnsUuid(): Promise<string> {
    return PERSON;
  }

  @MoEvent('employee', 'employee', 'update')
  async returnsObjectWithUuid(): Promise<{ uuid: string }> {
    return { uuid: PERSON };
  }

  @MoEvent('employee', 'employee', 'delete')
  async fails(): Promise<Engagement> {
    throw new Error('database says no');
  }

  @MoEvent('employee', 'leave', 'create')
  syncCreate(uuid: string): { uuid: string; by: string } {
    return { uuid, by: this.prefix };
  }

  @MoEvent('employee', 'leave', 'delete')
  syncThrows(): { uuid: string } {
    throw new RangeError('sync failure');
  }

  @MoEvent('employee', 'address', 'update', { uuid: (_r: unknown, owners: string[]) => owners })
  async many(_owners: string[]): Promise<void> {}

  @MoEvent('employee', 'role', 'create', {
    uuid: () => {
      throw new TypeError('no uuid here');
    },
  })
  async selectorThrows(): Promise<string> {
    return 'business result';
  }

  @MoEvent('employee', 'role', 'update', { uuid: () => 'not-a-uuid' })
  async selectorReturnsJunk(): Promise<string> {
    return 'business result';
  }

  @SetMetadata('roles', ['admin'])
  @RabbitSubscribe({ exchange: 'os2mo', routingKey: 'employee.*.*', queue: 'q' })
  @MoEvent('employee', 'it', 'create')
  async withOtherMetadata(): Promise<string> {
    return PERSON;
  }
}

describe('@MoEvent', () => {
  it('publishes once the returned promise fulfils, with selectors, in the order written', async () => {
    await boot([EngagementService]);
    const result = await app!.get(EngagementService).create(PERSON, UNIT, '2021-07-27');
    expect(result).toEqual({ uuid: ENGAGEMENT, employeeUuid: PERSON, orgUnitUuid: UNIT, validFrom: '2021-07-27' });
    expect(published()).toEqual([
      `employee.engagement.create ${PERSON} {"time":"2021-07-27","objectUuid":"${ENGAGEMENT}"}`,
      `org_unit.engagement.create ${UNIT} {}`,
    ]);
  });

  it('gives the caller the method’s own value, after the publish has settled', async () => {
    const order: string[] = [];
    const value = { uuid: PERSON };
    @Injectable()
    class Service {
      @MoEvent('employee', 'employee', 'create')
      async create() {
        order.push('method resolved');
        return value;
      }
    }
    await boot([Service]);
    publish.mockImplementation(async () => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      order.push('publish settled');
      return { status: 'confirmed' } as MoPublishResult;
    });
    const result = await app!.get(Service).create();
    order.push('caller resumed');
    expect(result).toBe(value);
    expect(order).toEqual(['method resolved', 'publish settled', 'caller resumed']);
  });

  it('defaults the UUID to a string result, or to result.uuid', async () => {
    await boot([EngagementService]);
    await app!.get(EngagementService).returnsUuid();
    await app!.get(EngagementService).returnsObjectWithUuid();
    expect(publish.mock.calls.map((c) => c[3])).toEqual([PERSON, PERSON]);
  });

  it('publishes nothing when the method rejects, and passes the rejection on unchanged', async () => {
    await boot([EngagementService]);
    await expect(app!.get(EngagementService).fails()).rejects.toThrow('database says no');
    expect(publish).not.toHaveBeenCalled();
  });

  it('keeps a synchronous method synchronous, and publishes in the background', async () => {
    await boot([EngagementService]);
    const result = app!.get(EngagementService).syncCreate(PERSON);
    expect(result).toEqual({ uuid: PERSON, by: 'engagement' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(published()).toEqual([`employee.leave.create ${PERSON} {}`]);
  });

  it('lets a synchronous throw through and publishes nothing', async () => {
    await boot([EngagementService]);
    expect(() => app!.get(EngagementService).syncThrows()).toThrow(RangeError);
    await new Promise((resolve) => setImmediate(resolve));
    expect(publish).not.toHaveBeenCalled();
  });

  it('keeps `this`, the name and the metadata other decorators put on the method', async () => {
    await boot([EngagementService]);
    const service = app!.get(EngagementService);
    expect(service.syncCreate.name).toBe('syncCreate');
    expect(service.create.name).toBe('create');
    expect(Reflect.getMetadata('roles', service.withOtherMetadata)).toEqual(['admin']);
    expect(Reflect.getMetadata(RABBIT_HANDLER, service.withOtherMetadata)).toMatchObject({
      type: 'subscribe',
      routingKey: 'employee.*.*',
    });
    await service.create(PERSON, UNIT);
    expect(service.calls).toEqual(['create']);
  });

  it('sends one message per UUID when the selector returns several, none for an empty list', async () => {
    await boot([EngagementService]);
    await app!.get(EngagementService).many([PERSON, UNIT]);
    await app!.get(EngagementService).many([]);
    expect(publish.mock.calls.map((c) => c[3])).toEqual([PERSON, UNIT]);
  });

  it('logs a selector that throws, with Class.method, sends nothing and still returns the result', async () => {
    await boot([EngagementService]);
    const events = app!.get(MoEventsService);
    await expect(app!.get(EngagementService).selectorThrows()).resolves.toBe('business result');
    expect(publish).not.toHaveBeenCalled();
    expect(logger.text).toContain(
      'ERROR @MoEvent employee.role.create on EngagementService.selectorThrows was not published: ' +
        'MoEventDecoratorError: @MoEvent on EngagementService.selectorThrows: the uuid selector threw TypeError: no uuid here',
    );
    expect(events.counters.decoratorFailures).toBe(1);
  });

  it('logs a selector that returns a non-UUID, sends nothing and still returns the result', async () => {
    await boot([EngagementService]);
    await expect(app!.get(EngagementService).selectorReturnsJunk()).resolves.toBe('business result');
    expect(logger.text).toContain(
      '@MoEvent employee.role.update on EngagementService.selectorReturnsJunk was not published: ' +
        'MoEventValidationError: Invalid MO event uuid: received "not-a-uuid"',
    );
    expect(app!.get(MoEventsService).counters).toMatchObject({ invalid: 1, disabled: 0, decoratorFailures: 1 });
  });

  it('never turns a fulfilled method into a rejection when publishing fails (log mode)', async () => {
    await boot([EngagementService]);
    publish.mockRejectedValue(new MoPublishError('broker gone', 'timeout', 'employee.employee.update', 'id-1'));
    await expect(app!.get(EngagementService).returnsUuid()).resolves.toBe(PERSON);
    expect(logger.text).toContain(
      'ERROR @MoEvent employee.employee.update on EngagementService.returnsUuid was not published: MoPublishError: broker gone',
    );
    expect(app!.get(MoEventsService).counters.decoratorFailures).toBe(1);
  });

  it('rejects instead when the module says eventFailures: throw', async () => {
    await boot([EngagementService], { eventFailures: 'throw' });
    const failure = new MoPublishError('broker gone', 'timeout', 'employee.employee.update', 'id-1');
    publish.mockRejectedValue(failure);
    await expect(app!.get(EngagementService).returnsUuid()).rejects.toBe(failure);
  });

  it('wraps an aliased provider once', async () => {
    await boot([EngagementService, { provide: 'ALIAS', useExisting: EngagementService } as never]);
    expect(app!.get('ALIAS')).toBe(app!.get(EngagementService));
    await app!.get<EngagementService>('ALIAS').returnsUuid();
    expect(publish).toHaveBeenCalledTimes(1);
  });

  it('publishes through the module of the app that made the instance: a second one, a frozen one, a call without this', async () => {
    const earlier = await boot([EngagementService]);
    app = undefined;
    try {
      const frozen = Object.freeze(new EngagementService());
      await boot([
        EngagementService,
        { provide: 'SECOND', useClass: EngagementService } as never,
        { provide: 'FROZEN', useValue: frozen } as never,
      ]);
      const own = app!.get(MoEventsService);
      await app!.get(EngagementService).returnsUuid();
      await app!.get<EngagementService>('SECOND').returnsUuid();
      await app!.get<EngagementService>('FROZEN').returnsUuid();
      await earlier.get(EngagementService).returnsUuid();
      expect(publish.mock.contexts).toEqual([own, own, own, earlier.get(MoEventsService)]);
      // Without `this`: the app that bound the class last (documented).
      const detached = app!.get(EngagementService).returnsUuid;
      await detached();
      expect(publish.mock.contexts.at(-1)).toBe(own);
    } finally {
      await earlier.close();
    }
  });

  it('works for request-scoped and transient providers', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @MoEvent('org_unit', 'org_unit', 'update')
      async update() {
        return UNIT;
      }
    }
    @Injectable({ scope: Scope.TRANSIENT })
    class Transient {
      @MoEvent('org_unit', 'org_unit', 'delete')
      async remove() {
        return UNIT;
      }
    }
    await boot([PerRequest, Transient]);
    await (await app!.resolve(PerRequest)).update();
    await (await app!.resolve(Transient)).remove();
    expect(published()).toEqual([`org_unit.org_unit.update ${UNIT} {}`, `org_unit.org_unit.delete ${UNIT} {}`]);
  });

  it('publishes once through an inherited method and a subclass that calls super', async () => {
    @Injectable()
    class Base {
      @MoEvent('employee', 'manager', 'create')
      async create() {
        return PERSON;
      }
    }
    @Injectable()
    class Derived extends Base {
      override async create() {
        return super.create();
      }
    }
    await boot([Base, Derived]);
    await app!.get(Derived).create();
    await app!.get(Base).create();
    expect(publish).toHaveBeenCalledTimes(2);
  });

  it('stops publishing after the app closes, and says so once', async () => {
    await boot([EngagementService]);
    const service = app!.get(EngagementService);
    await app!.close();
    app = undefined;
    await service.returnsUuid();
    await service.returnsUuid();
    expect(publish).not.toHaveBeenCalled();
    expect(logger.lines.filter((l) => l.includes('ran with no MoAmqpModule started'))).toHaveLength(1);
  });

  it('refuses to start with @MoEvent on a controller, instead of silently not publishing', async () => {
    @Controller('x')
    class WrongPlace {
      @Post()
      @MoEvent('employee', 'employee', 'create')
      async create() {
        return PERSON;
      }
    }
    const err = await boot([], {}, [WrongPlace]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoEventDecoratorError);
    expect((err as Error).message).toContain('@MoEvent on WrongPlace.create: controllers are not supported');
  });

  it('refuses to start with a word outside the vocabulary (JavaScript callers)', async () => {
    @Injectable()
    class Typo {
      @MoEvent('employe' as never, 'engagement', 'create')
      async create() {
        return PERSON;
      }
    }
    const err = await boot([Typo]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoEventDecoratorError);
    expect((err as Error).message).toBe(
      '@MoEvent on Typo.create: service "employe" is not one of employee, org_unit ' +
        '(the seed vocabulary, AMQP__VOCABULARY=seed)',
    );
  });

  describe('in the os2mo vocabulary', () => {
    it('publishes OS2mo 2021+ words with object_uuid', async () => {
      @Injectable()
      class Engagements {
        @MoEvent('employee', 'engagement', 'terminate', {
          uuid: (e: Engagement) => e.employeeUuid,
          objectUuid: (e) => e.uuid,
        })
        @MoEvent('org_unit', 'kle', 'refresh', { uuid: (e: Engagement) => e.orgUnitUuid, objectUuid: (e) => e.uuid })
        async end(): Promise<Engagement> {
          return { uuid: ENGAGEMENT, employeeUuid: PERSON, orgUnitUuid: UNIT };
        }
      }
      const moduleRef = await boot([Engagements], { vocabulary: 'os2mo' });
      await moduleRef.get(Engagements).end();
      expect(published()).toEqual([
        `employee.engagement.terminate ${PERSON} {"objectUuid":"${ENGAGEMENT}"}`,
        `org_unit.kle.refresh ${UNIT} {"objectUuid":"${ENGAGEMENT}"}`,
      ]);
      const results = await Promise.all(publish.mock.results.map((r) => r.value as Promise<MoPublishResult>));
      expect(results.map((r) => r.status)).toEqual(['disabled', 'disabled']);
    });

    it('refuses to start with a seed word, saying which vocabulary has it', async () => {
      @Injectable()
      class SeedWords {
        @MoEvent('employee', 'engagement', 'update', { objectUuid: () => ENGAGEMENT })
        async update() {
          return PERSON;
        }
      }
      const err = await boot([SeedWords], { vocabulary: 'os2mo' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MoEventDecoratorError);
      expect((err as Error).message).toContain(
        'action "update" is not one of create, edit, terminate, refresh (the os2mo vocabulary, AMQP__VOCABULARY=os2mo); ' +
          '"update" is a word of the seed vocabulary',
      );
    });

    it('refuses to start without an objectUuid selector', async () => {
      @Injectable()
      class NoObject {
        @MoEvent('employee', 'engagement', 'edit')
        async edit() {
          return PERSON;
        }
      }
      const err = await boot([NoObject], { vocabulary: 'os2mo' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MoEventDecoratorError);
      expect((err as Error).message).toContain(
        'NoObject.edit: the os2mo vocabulary (AMQP__VOCABULARY=os2mo) requires object_uuid',
      );
      expect((err as Error).message).toContain('give an objectUuid selector');
    });
  });

  it('refuses to start with an unknown selector', async () => {
    @Injectable()
    class BadSelector {
      @MoEvent('employee', 'engagement', 'create', { uuids: () => [PERSON] } as never)
      async create() {
        return PERSON;
      }
    }
    const err = await boot([BadSelector]).catch((e: unknown) => e);
    expect((err as Error).message).toContain('unknown selector "uuids"');
  });

  it('warns at start-up about a decorated class no module provides', async () => {
    @Injectable()
    class Forgotten {
      @MoEvent('employee', 'engagement', 'create')
      async create() {
        return PERSON;
      }
    }
    expect(Forgotten).toBeDefined();
    await boot([]);
    expect(logger.text).toContain('Forgotten has @MoEvent methods but is not a provider of this application');
  });
});

describe('@MoEvent with change (OS2mo’s AMQP subsystem beside the legacy event)', () => {
  let publishChange: jest.SpyInstance;
  beforeEach(() => {
    publishChange = jest.spyOn(MoEventsService.prototype, 'publishChange');
  });
  afterEach(() => publishChange.mockRestore());
  const changes = () => publishChange.mock.calls.map(([type, uuid]) => `${type} ${uuid}`);

  @Injectable()
  class StandIn {
    @MoEvent('employee', 'engagement', 'create', {
      uuid: (e: Engagement) => e.employeeUuid,
      objectUuid: (e: Engagement) => e.uuid,
      change: true,
    })
    @MoEvent('org_unit', 'engagement', 'create', {
      uuid: (e: Engagement) => e.orgUnitUuid,
      objectUuid: (e: Engagement) => e.uuid,
      change: true,
    })
    async create(): Promise<Engagement> {
      return { uuid: ENGAGEMENT.toUpperCase(), employeeUuid: PERSON, orgUnitUuid: UNIT };
    }

    @MoEvent('employee', 'employee', 'edit', { objectUuid: (person: string) => person, change: true })
    async rename(): Promise<string> {
      return PERSON;
    }

    @MoEvent('org_unit', 'it', 'edit', { uuid: () => UNIT, objectUuid: () => ENGAGEMENT, change: true })
    async itUser(): Promise<void> {}

    @MoEvent('employee', 'role', 'edit', { uuid: () => PERSON, objectUuid: () => ENGAGEMENT, change: 'rolebinding' })
    async role(): Promise<void> {}

    @MoEvent('employee', 'employee', 'edit', { time: () => 'yesterday', objectUuid: () => PERSON, change: true })
    async badTime(): Promise<string> {
      return PERSON;
    }
  }

  it('publishes the subsystem message once per object, after its events, with the object’s own UUID', async () => {
    await boot([StandIn], { vocabulary: 'os2mo' });
    await app!.get(StandIn).create();
    expect(published()).toHaveLength(2);
    expect(changes()).toEqual([`engagement ${ENGAGEMENT}`]);
  });

  it.each([
    ['rename', `person ${PERSON}`],
    ['itUser', `ituser ${ENGAGEMENT}`],
    ['role', `rolebinding ${ENGAGEMENT}`],
  ] as const)('%s: takes the subsystem’s word and the object', async (method, expected) => {
    await boot([StandIn], { vocabulary: 'os2mo' });
    await app!.get(StandIn)[method]();
    expect(changes()).toEqual([expected]);
  });

  it('names each person of an employee.employee event, and the object for any other service and type', async () => {
    const OTHER = '0b8f4c1e-2d3a-4e5f-8a9b-1c2d3e4f5a6b';
    @Injectable()
    class People {
      @MoEvent('employee', 'employee', 'edit', { uuid: () => [PERSON, OTHER], objectUuid: () => PERSON, change: true })
      async renameTwo(): Promise<void> {}

      @MoEvent('org_unit', 'employee', 'create', { uuid: () => UNIT, objectUuid: () => OTHER, change: true })
      async hire(): Promise<void> {}
    }
    await boot([People], { vocabulary: 'os2mo' });
    await app!.get(People).renameTwo();
    await app!.get(People).hire();
    expect(changes()).toEqual([`person ${PERSON}`, `person ${OTHER}`, `person ${OTHER}`]);
  });

  it('sends the event but not its subsystem message when the objectUuid selector gives nothing, and says so', async () => {
    @Injectable()
    class Sloppy {
      @MoEvent('employee', 'engagement', 'create', { uuid: () => PERSON, objectUuid: () => null, change: true })
      async create(): Promise<void> {}
    }
    await boot([Sloppy]);
    await app!.get(Sloppy).create();
    expect(published()).toEqual([`employee.engagement.create ${PERSON} {}`]);
    expect(changes()).toEqual([]);
    expect(logger.text).toContain(
      '@MoEvent employee.engagement.create on Sloppy.create: its AMQP-subsystem message engagement was not published: ' +
        'MoEventValidationError: Invalid MO event objectUuid: received undefined',
    );
  });

  it('takes change: false as off', async () => {
    @Injectable()
    class Off {
      @MoEvent('employee', 'employee', 'update', { change: false })
      async rename(): Promise<string> {
        return PERSON;
      }
    }
    await boot([Off]);
    await app!.get(Off).rename();
    expect(published()).toHaveLength(1);
    expect(changes()).toEqual([]);
  });

  it('sends no subsystem message for an event that was refused, and logs the refusal', async () => {
    await boot([StandIn], { vocabulary: 'os2mo' });
    await app!.get(StandIn).badTime();
    expect(changes()).toEqual([]);
    expect(logger.text).toContain('@MoEvent employee.employee.edit on StandIn.badTime was not published');
  });

  it('logs a subsystem message that could not be sent, naming it', async () => {
    publishChange.mockRejectedValue(new Error('broker gone'));
    await boot([StandIn], { vocabulary: 'os2mo' });
    await app!.get(StandIn).rename();
    expect(logger.text).toContain(
      `@MoEvent employee.employee.edit on StandIn.rename: its AMQP-subsystem message person ${PERSON} was not published: Error: broker gone`,
    );
  });

  it.each([
    [
      'a change without the object’s UUID',
      { uuid: () => PERSON, change: true },
      'the subsystem message names the changed engagement itself: give an objectUuid selector',
    ],
    [
      'a change word outside the subsystem',
      { uuid: () => PERSON, objectUuid: () => ENGAGEMENT, change: 'job' },
      'change "job" must be true, false or one of address',
    ],
  ])('refuses to start with %s', async (_what, selectors, problem) => {
    @Injectable()
    class Wrong {
      @MoEvent('employee', 'engagement', 'create', selectors as never)
      async create(): Promise<void> {}
    }
    await expect(boot([Wrong])).rejects.toThrow(problem);
  });
});
