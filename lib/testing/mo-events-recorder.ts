import { Injectable } from '@nestjs/common';
import type { Options } from 'amqplib';
import type { MoChangeObjectType } from '../events/vocabulary';

/** One event as it would have gone to RabbitMQ. */
export interface RecordedMoEvent {
  readonly exchange: string;
  readonly routingKey: string;
  /** The body exactly as it would have been sent (UTF-8 JSON text). */
  readonly body: string;
  /** The body, parsed: `uuid`, `time`, and `object_uuid` when there is one. */
  readonly json: { readonly uuid: string; readonly time: string; readonly object_uuid?: string };
  /** The AMQP properties it would have carried (`messageId`, `persistent`, `contentType`, `timestamp`). */
  readonly properties: Options.Publish;
}

/** One message of OS2mo's AMQP subsystem (`publishChange`, `@MoEvent` with `change`) as it would have gone to RabbitMQ. */
export interface RecordedMoChange {
  readonly exchange: string;
  /** The object type, which is the whole routing key. */
  readonly routingKey: MoChangeObjectType;
  readonly objectType: MoChangeObjectType;
  readonly uuid: string;
  /** The body exactly as it would have been sent: the UUID as a JSON string, quotes included. */
  readonly body: string;
  readonly properties: Options.Publish;
}

/**
 * What the app under test published, in order, with `MoAmqpTestingModule`:
 * inject it (`moduleRef.get(MoEventsRecorder)`) and assert on `events`.
 *
 * ```ts
 * await service.create(dto);
 * recorder.expectPublished('employee.engagement.create', { uuid: dto.employeeUuid });
 * ```
 */
@Injectable()
export class MoEventsRecorder {
  private readonly recorded: RecordedMoEvent[] = [];
  private readonly recordedChanges: RecordedMoChange[] = [];

  /** Every AMQP-subsystem message so far, oldest first (a copy); `events` holds the legacy ones. */
  get changes(): readonly RecordedMoChange[] {
    return [...this.recordedChanges];
  }

  /**
   * The one subsystem message for this object type (and UUID, when given);
   * throws an error listing what was published when there is none (or several).
   */
  expectChanged(objectType: MoChangeObjectType, uuid?: string): RecordedMoChange {
    const matches = this.recordedChanges.filter(
      (change) => change.objectType === objectType && (uuid === undefined || change.uuid === uuid.toLowerCase()),
    );
    if (matches.length === 1) return matches[0];
    const wanted = `${objectType}${uuid === undefined ? '' : ` ${uuid}`}`;
    const seen = this.recordedChanges.map((change) => `  ${change.routingKey} ${change.body}`).join('\n') || '  (none)';
    throw new Error(`Expected one AMQP-subsystem message ${wanted}, found ${matches.length}. Published:\n${seen}`);
  }

  /** Every event so far, oldest first (a copy). */
  get events(): readonly RecordedMoEvent[] {
    return [...this.recorded];
  }

  /** The routing keys of `events`, in order: `['employee.engagement.create', …]`. */
  get routingKeys(): string[] {
    return this.recorded.map((event) => event.routingKey);
  }

  /** Forgets what was recorded, events and subsystem messages (between tests). */
  clear(): void {
    this.recorded.length = 0;
    this.recordedChanges.length = 0;
  }

  /** The events with this routing key, in order. */
  withRoutingKey(routingKey: string): RecordedMoEvent[] {
    return this.recorded.filter((event) => event.routingKey === routingKey);
  }

  /**
   * The one event with this routing key whose body has these fields; throws an
   * error listing what was published when there is none (or several).
   */
  expectPublished(routingKey: string, body: Partial<RecordedMoEvent['json']> = {}): RecordedMoEvent {
    const matches = this.withRoutingKey(routingKey).filter((event) =>
      Object.entries(body).every(([key, value]) => event.json[key as keyof RecordedMoEvent['json']] === value),
    );
    if (matches.length === 1) return matches[0];
    const wanted = `${routingKey}${Object.keys(body).length > 0 ? ` with ${JSON.stringify(body)}` : ''}`;
    const seen = this.recorded.map((event) => `  ${event.routingKey} ${event.body}`).join('\n') || '  (none)';
    throw new Error(`Expected one MO event ${wanted}, found ${matches.length}. Published:\n${seen}`);
  }

  /** @internal */
  record(event: RecordedMoEvent): void {
    this.recorded.push(event);
  }

  /** @internal */
  recordChange(change: RecordedMoChange): void {
    this.recordedChanges.push(change);
  }
}
