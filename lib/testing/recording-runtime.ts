import { Inject, Injectable, Logger } from '@nestjs/common';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoOutgoingMessage } from '../events/mo-event';
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
    this.recorder.record({
      exchange: this.recordingOptions.exchange,
      routingKey: event.routingKey,
      body: event.body,
      json: JSON.parse(event.body),
      properties: moEventProperties(messageId),
    });
    this.count('published');
    this.count('confirmed');
    return 'confirmed';
  }

  override async onModuleInit(): Promise<void> {
    this.recordingLogger.log('Recording MO events in MoEventsRecorder: nothing is sent');
  }
}
