import { Inject, Injectable, Logger } from '@nestjs/common';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoOutgoingMessage } from '../events/mo-event';
import type { MoChangeObjectType } from '../events/vocabulary';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { moEventProperties } from '../util/publish-properties';
import { MoEventsRecorder } from './mo-events-recorder';

/**
 * The runtime without a broker: `MoEventsService` validates every event exactly
 * as in production (a bad one rejects with `MoEventValidationError`), then it is
 * recorded in `MoEventsRecorder` and resolves `confirmed`.
 */
@Injectable()
export class RecordingMoAmqpRuntime extends MoAmqpRuntime {
  private readonly recordingLogger = new Logger('MoAmqpTestingModule');

  constructor(
    @Inject(MO_AMQP_OPTIONS) private readonly recordingOptions: ResolvedMoAmqpOptions,
    private readonly recorder: MoEventsRecorder,
  ) {
    super(recordingOptions);
  }

  override async send(event: MoOutgoingMessage, messageId: string): Promise<'confirmed'> {
    const { exchange } = this.recordingOptions;
    const json: unknown = JSON.parse(event.body);
    const properties = moEventProperties(messageId);
    // Validated before it came here: a JSON string is an AMQP-subsystem message, an object a legacy event.
    if (typeof json === 'string') {
      const objectType = event.routingKey as MoChangeObjectType;
      this.recorder.recordChange({
        exchange,
        routingKey: objectType,
        objectType,
        uuid: json,
        body: event.body,
        properties,
      });
    } else {
      this.recorder.record({
        exchange,
        routingKey: event.routingKey,
        body: event.body,
        json: json as never,
        properties,
      });
    }
    this.count('published');
    this.count('confirmed');
    return 'confirmed';
  }

  override async onModuleInit(): Promise<void> {
    this.recordingLogger.log('Recording MO events in MoEventsRecorder: nothing is sent');
  }
}
