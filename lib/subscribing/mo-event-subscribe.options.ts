import { MoAction, MoChangeObjectType, MoObjectType, MoService } from '../events/vocabulary';

/** Options of `@MoEventSubscribe`. Only `queue` is required. */
export interface MoEventSubscribeOptions extends MoConsumerQueueOptions {
  /** The three words of the binding, from either vocabulary; a missing one binds `*`. */
  service?: MoService;
  objectType?: MoObjectType;
  action?: MoAction;
  /** Bind to the delayed exchange (`AMQP__DELAYED_EXCHANGE`) instead of the events exchange. */
  delayed?: boolean;
}

/** Options of `@MoChangeSubscribe` (OS2mo's AMQP subsystem). Only `queue` is required. */
export interface MoChangeSubscribeOptions extends MoConsumerQueueOptions {
  /** The object type (the whole routing key) or several; left out, every one-word key (`*`). */
  objectType?: MoChangeObjectType | readonly MoChangeObjectType[];
}

/** The queue options both consumers share. */
export interface MoConsumerQueueOptions {
  /** A durable queue of this name receives the messages; `<queue>.dlq` receives the failures. */
  queue: string;
  /** Bind to this exchange by name instead of the events exchange (it must exist). */
  exchange?: string;
  /** `quorum` for clusters (replicated; crash loops end after 10 deliveries). Default `classic`. */
  queueType?: 'classic' | 'quorum';
  /** Messages handled at once. Default 10. */
  prefetch?: number;
  /** How often a message whose handler throws is tried again before it is dead-lettered. Default 3. */
  retries?: number;
  /**
   * How long a failed message waits before it is tried again: this after the
   * first failure, doubling after each further one (at most a day). It waits in
   * `<queue>.retry`, held by the broker, so the consumer goes on with other
   * messages. 0 tries again at once. Default 5,000 ms.
   */
  retryDelayMs?: number;
}

export const DEFAULT_PREFETCH = 10;
