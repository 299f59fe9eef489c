import { DynamicModule, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { MoAmqpModuleOptions } from '../config/mo-amqp-options.interface';
import { resolveMoAmqpOptions } from '../config/mo-amqp-options.schema';
import { MoAmqpHealthIndicator } from '../health/mo-amqp-health.indicator';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { MoEventExplorer } from '../publishing/mo-event.explorer';
import { MoEventsService } from '../publishing/mo-events.service';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { MoEventsRecorder } from './mo-events-recorder';
import { RecordingMoAmqpRuntime } from './recording-runtime';

/**
 * `MoAmqpModule` for tests, without a broker: `@MoEvent` works and validates as
 * in production, `MoEventsService.publish()` validates and records, and
 * `MoEventsRecorder` holds what would have been sent.
 *
 * ```ts
 * const moduleRef = await Test.createTestingModule({
 *   imports: [MoAmqpTestingModule.forRoot()],
 *   providers: [EngagementService],
 * }).compile();
 * await moduleRef.init(); // @MoEvent methods are bound at init
 * ```
 *
 * Options are `MoAmqpModule`'s (`vocabulary`, `timeZone`, `exchange`, …); the
 * ones about the broker are ignored.
 */
@Module({})
export class MoAmqpTestingModule {
  static forRoot(options: MoAmqpModuleOptions = {}): DynamicModule {
    return {
      module: MoAmqpTestingModule,
      global: true,
      imports: [DiscoveryModule],
      providers: [
        { provide: MO_AMQP_OPTIONS, useValue: resolveMoAmqpOptions({ ...options, enabled: false }) },
        MoEventsRecorder,
        { provide: MoAmqpRuntime, useClass: RecordingMoAmqpRuntime },
        MoEventsService,
        MoEventExplorer,
        MoAmqpHealthIndicator,
      ],
      exports: [MoEventsService, MoEventsRecorder, MoAmqpHealthIndicator, MO_AMQP_OPTIONS],
    };
  }
}
