/**
 * Options of `MoAmqpModule.forRoot()`; every one is optional. With
 * `forRootAsync()` and no arguments they are read from the environment instead
 * (`ENABLE_AMQP`, `AMQP__*`; see the README's configuration table).
 */
export interface MoAmqpModuleOptions {
  /** Off by default: nothing connects and `publish()` reports `disabled`. */
  enabled?: boolean;
  /** The topic exchange events go to. Default `os2mo`. */
  exchange?: string;
  /** The topic exchange the delay agent republishes due events on. Default `os2mo_delayed`. */
  delayedExchange?: string;
  /** Broker host, default `localhost`; ignored when `url` is given. */
  host?: string;
  /** Broker port, default 5672; ignored when `url` is given. */
  port?: number;
  /** `amqp://user:password@host:port/vhost` or `amqps://…`; wins over host and port. */
  url?: string;
  /** IANA zone in which a `Date` is written and a naive time is read. Default `UTC`. */
  timeZone?: string;
  /** How long a publish may wait for the broker's confirm. Default 10,000 ms. */
  publishTimeoutMs?: number;
  /** How long start-up may wait for the broker. Default 10,000 ms. */
  connectTimeoutMs?: number;
  /** Publishes waiting for a confirm at once; beyond it a publish fails at once. Default 10,000. */
  maxInFlight?: number;
  /**
   * When an `@MoEvent` method has resolved but its event cannot be published:
   * `log` (default) logs it at error level and returns the method's result, as
   * OS2mo did (publishing must not fail a write that succeeded); `throw` rejects.
   */
  eventFailures?: 'log' | 'throw';
  /**
   * Directory of the durable spool: events the broker cannot take now are written
   * here (fsynced) and sent, in order, when it can. `off` disables it. Default
   * `.mo-amqp-spool` in the working directory.
   */
  spoolDir?: string;
  /** The spool's limit; beyond it `publish()` fails with reason `spool-full`. Default 100 MiB. */
  spoolMaxBytes?: number;
  /**
   * Bounds shutdown: consumers finishing what they hold, then confirms in flight,
   * together (what is still unconfirmed is spooled). Default 5,000 ms.
   */
  shutdownTimeoutMs?: number;
}

/** Options after defaults and validation: what the library runs on. */
export type ResolvedMoAmqpOptions = Readonly<Required<Omit<MoAmqpModuleOptions, 'url'>>> & {
  readonly url: string | undefined;
};
