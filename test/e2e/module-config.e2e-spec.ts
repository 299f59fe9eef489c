import { Injectable, Module, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  MO_AMQP_OPTIONS,
  MoAmqpConfigError,
  MoAmqpModule,
  MoAmqpModuleOptions,
  MoAmqpOptionsFactory,
  MoEventsService,
  ResolvedMoAmqpOptions,
} from '../../lib';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';

const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

@Injectable()
class Settings {
  exchange = uniqueName('async');
}

@Module({ providers: [Settings], exports: [Settings] })
class SettingsModule {}

@Injectable()
class OptionsFromSettings implements MoAmqpOptionsFactory {
  constructor(private readonly settings: Settings) {}
  createMoAmqpOptions(): MoAmqpModuleOptions {
    return { enabled: true, url: BROKER_URL, exchange: this.settings.exchange };
  }
}

async function publishOne(imports: ModuleMetadata['imports']) {
  const app = await Test.createTestingModule({ imports }).setLogger(new CapturingLogger()).compile();
  await app.init();
  try {
    const options = app.get<ResolvedMoAmqpOptions>(MO_AMQP_OPTIONS);
    const broker = await TestBroker.connect();
    const collector = await broker.collect(options.exchange);
    await app.get(MoEventsService).publish('employee', 'role', 'create', UUID);
    await collector.waitFor(1);
    await broker.close();
    return options;
  } finally {
    await app.close();
  }
}

describe('MoAmqpModule.forRootAsync', () => {
  it('takes a factory with injected dependencies', async () => {
    const options = await publishOne([
      MoAmqpModule.forRootAsync({
        imports: [SettingsModule],
        inject: [Settings],
        useFactory: async (settings: Settings) => ({ enabled: true, url: BROKER_URL, exchange: settings.exchange }),
      }),
    ]);
    expect(options.exchange).toMatch(/^test\.async\./);
    expect(options.publishTimeoutMs).toBe(10_000);
  });

  it('takes an options class (useClass)', async () => {
    const options = await publishOne([
      MoAmqpModule.forRootAsync({ imports: [SettingsModule], useClass: OptionsFromSettings }),
    ]);
    expect(options.enabled).toBe(true);
  });

  it('takes an existing options provider (useExisting)', async () => {
    @Module({ providers: [Settings, OptionsFromSettings], exports: [OptionsFromSettings] })
    class OptionsModule {}
    const options = await publishOne([
      MoAmqpModule.forRootAsync({ imports: [OptionsModule], useExisting: OptionsFromSettings }),
    ]);
    expect(options.url).toBe(BROKER_URL);
  });

  it('validates what a factory returns, naming the option', async () => {
    const err = await Test.createTestingModule({
      imports: [MoAmqpModule.forRootAsync({ useFactory: () => ({ enabled: true, port: 0 }) })],
    })
      .setLogger(new CapturingLogger())
      .compile()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoAmqpConfigError);
    expect((err as Error).message).toContain('port: received 0; allowed: a whole number from 1 to 65535');
  });
});
