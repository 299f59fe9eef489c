import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoEventOptions, buildMoEvent } from '../events/mo-event';
import { MoActionOf, MoObjectTypeOf, MoPublishVocabulary, MoService } from '../events/vocabulary';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { MoEventsService } from '../publishing/mo-events.service';
import { MoPublishResult } from '../publishing/mo-publish-result';
import { moEventProperties } from '../util/publish-properties';
import { MoEventsRecorder } from './mo-events-recorder';

/**
 * `MoEventsService` without a broker: validates every event exactly as in
 * production (a bad one rejects with `MoEventValidationError`), then records it
 * in `MoEventsRecorder` and resolves `confirmed`.
 */
@Injectable()
export class RecordingMoEventsService extends MoEventsService {
  private readonly recordingLogger = new Logger('MoAmqpTestingModule');

  constructor(
    @Inject(MO_AMQP_OPTIONS) private readonly recordingOptions: ResolvedMoAmqpOptions,
    private readonly recorder: MoEventsRecorder,
  ) {
    super(recordingOptions);
  }

  override async publish(
    service: MoService,
    objectType: MoObjectTypeOf<MoPublishVocabulary>,
    action: MoActionOf<MoPublishVocabulary>,
    uuid: string,
    options?: MoEventOptions,
  ): Promise<MoPublishResult> {
    const event = buildMoEvent(service, objectType, action, uuid, options, this.recordingOptions);
    const { exchange } = this.recordingOptions;
    const messageId = randomUUID();
    this.recorder.record({
      exchange,
      routingKey: event.routingKey,
      body: event.body,
      json: JSON.parse(event.body),
      properties: moEventProperties(messageId),
    });
    return { status: 'confirmed', exchange, routingKey: event.routingKey, messageId, body: event.body };
  }

  override async onModuleInit(): Promise<void> {
    this.recordingLogger.log('Recording MO events in MoEventsRecorder: nothing is sent');
  }
}
