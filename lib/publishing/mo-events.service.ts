import { Inject, Injectable, Optional } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoOutgoingChange, buildMoChange } from '../events/mo-change';
import { MoEventOptions, MoOutgoingEvent, MoOutgoingMessage, buildMoEvent } from '../events/mo-event';
import {
  MoActionOf,
  MoChangeObjectType,
  MoObjectTypeOf,
  MoPublishVocabulary,
  MoRoutingKey,
  MoService,
} from '../events/vocabulary';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { MoOutboxWriter } from '../outbox/transaction-writer';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { MoEventCounters, MoSpoolStats } from '../runtime/mo-amqp-stats';
import { MoPublishResult } from './mo-publish-result';

/**
 * Publishes MO events on the configured topic exchange.
 *
 * ```ts
 * await events.publish('employee', 'engagement', 'create', personUuid, { time: validFrom });
 * await events.publishChange('engagement', engagementUuid); // OS2mo's AMQP subsystem (2023-)
 * ```
 */
@Injectable()
export class MoEventsService {
  /** @internal Nest builds it; inject it where you publish. */
  constructor(
    private readonly runtime: MoAmqpRuntime,
    @Inject(MO_AMQP_OPTIONS) private readonly options: ResolvedMoAmqpOptions,
    @Optional() private readonly outbox?: MoOutboxWriter,
  ) {}

  /** True when AMQP is enabled: events go to the broker. */
  get enabled(): boolean {
    return this.runtime.enabled;
  }

  /** What has happened to the events of this process so far (a copy). */
  get counters(): MoEventCounters {
    return this.runtime.counters;
  }

  /** The spool now: bytes, records and when the oldest was spooled; undefined without one. */
  get spoolStats(): MoSpoolStats | undefined {
    return this.runtime.spoolStats;
  }

  /** True while a channel to the broker is open and set up. */
  get connected(): boolean {
    return this.runtime.connected;
  }

  /**
   * Validates and publishes one event; resolves once RabbitMQ has confirmed it
   * (`status: 'confirmed'`) or it is durably on disk to be sent later
   * (`status: 'spooled'`).
   *
   * Rejects with `MoEventValidationError` (nothing sent) for a bad argument, and
   * with `MoPublishError` when it could be neither confirmed nor spooled (the
   * spool full or off). When AMQP is disabled it resolves at once with
   * `status: 'disabled'`.
   */
  async publish(
    service: MoService,
    objectType: MoObjectTypeOf<MoPublishVocabulary>,
    action: MoActionOf<MoPublishVocabulary>,
    uuid: string,
    options?: MoEventOptions,
  ): Promise<MoPublishResult<MoRoutingKey>> {
    let event: MoOutgoingEvent;
    try {
      event = buildMoEvent(service, objectType, action, uuid, options, this.options);
    } catch (err) {
      this.runtime.count('invalid');
      throw err;
    }
    return this.send(event);
  }

  /**
   * Publishes one message of OS2mo's AMQP subsystem (2023-): routing key the
   * object type, body the object's UUID as a JSON string, byte for byte what
   * OS2mo's `json.dumps(str(uuid))` writes. Persistent and confirmed (or
   * spooled, or outboxed in a transaction) exactly as `publish()` is; rejects
   * with `MoEventValidationError` for a bad object type or UUID.
   *
   * ```ts
   * await events.publishChange('engagement', 'c390b9a2-7202-48e6-972b-ce36a90065c4');
   * ```
   */
  async publishChange(objectType: MoChangeObjectType, uuid: string): Promise<MoPublishResult<MoChangeObjectType>> {
    let change: MoOutgoingChange;
    try {
      change = buildMoChange(objectType, uuid);
    } catch (err) {
      this.runtime.count('invalid');
      throw err;
    }
    return this.send(change);
  }

  /** A validated message of either format: confirmed, spooled, or in a transaction outboxed. */
  private async send<K extends string>(
    message: MoOutgoingMessage & { readonly routingKey: K },
  ): Promise<MoPublishResult<K>> {
    const messageId = randomUUID();
    // Inside a transaction of the outbox's connection the message becomes a row of it, committed with the change.
    const status = this.outbox?.inTransaction
      ? await this.outbox.send(message, messageId)
      : await this.runtime.send(message, messageId);
    return { status, exchange: this.options.exchange, routingKey: message.routingKey, messageId, body: message.body };
  }
}
