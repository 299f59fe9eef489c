import type { MoVocabulary } from '../events/vocabulary';

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
  /**
   * The durability both exchanges are declared with. Default `true`; `false` to
   * share exchanges that an OS2mo before 2022, the original delay agent or the
   * seed's consumer script declared non-durable (RabbitMQ refuses a second
   * declaration that differs).
   */
  exchangeDurable?: boolean;
  /**
   * Whether the exchanges are declared at start, or only checked. Default `true`;
   * `false` only checks that they exist (start-up fails, naming the one missing),
   * for a RabbitMQ user without `configure` permission.
   */
  declareExchanges?: boolean;
  /**
   * The words `publish()` and `@MoEvent` accept: `seed` (default; the seed's
   * create/update/delete) or `os2mo` (OS2mo 2021+ and ramqp: create, edit,
   * terminate, refresh; `kle`, `owner`; `object_uuid` required). Readers accept both.
   */
  vocabulary?: MoVocabulary;
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
  /**
   * Whether start-up goes on while RabbitMQ is unreachable: `auto` (default) when
   * the spool (`spoolDir` not `off`) or the outbox (`outbox: 'postgres'`) holds the
   * events meanwhile; `true` always (without either, publishes then fail with
   * `MoPublishError`); `false` never: start-up waits `connectTimeoutMs` and fails.
   * A broker that refuses (login, vhost, TLS, exchange) fails start-up in every case.
   * See docs/operations.md.
   */
  startWithoutBroker?: 'auto' | 'true' | 'false';
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
  /**
   * PEM file of the CA certificate(s) that sign the broker's certificate; with an
   * amqps:// `url` only. Replaces Node's built-in list of public CAs (for both,
   * use `NODE_EXTRA_CA_CERTS` instead). See docs/tls.md.
   */
  tlsCaFile?: string;
  /** PEM file of this client's certificate (with `tlsKeyFile`), for a broker that asks for one or `auth: 'external'`. */
  tlsCertFile?: string;
  /** PEM file of the client certificate's private key (with `tlsCertFile`). */
  tlsKeyFile?: string;
  /** The passphrase of an encrypted `tlsKeyFile`. A secret: never logged or shown. */
  tlsKeyPassphrase?: string;
  /** Whether the broker's certificate is verified. Default `true`; `false` accepts any (a warning is logged at every start): tests only. */
  tlsVerify?: boolean;
  /**
   * How to log in: `plain` (default; the user and password of `url`) or
   * `external` (the client certificate, RabbitMQ's rabbitmq_auth_mechanism_ssl).
   */
  auth?: 'plain' | 'external';
  /**
   * Where an event produced inside a transaction of `@nestjs-cls/transactional` goes:
   * `off` (default), or `postgres`: it is written to `outboxTable` in that
   * transaction, and the relay publishes it once committed. See docs/outbox.md.
   */
  outbox?: 'off' | 'postgres';
  /** `postgres://user:password@host:5432/database` of the outbox table; required with `outbox: 'postgres'`. */
  outboxUrl?: string;
  /** The outbox table (`name` or `schema.name`). Default `mo_amqp_outbox`. */
  outboxTable?: string;
  /** Whether this process relays committed rows to RabbitMQ. Default `true`; `false` when another process does. */
  outboxRelay?: boolean;
  /** The `connectionName` of the `@nestjs-cls/transactional` plugin whose transactions hold the rows; default its unnamed one. */
  outboxConnection?: string;
}

/** The options that have no default: absent unless given. */
type OptionalOption =
  'url' | 'tlsCaFile' | 'tlsCertFile' | 'tlsKeyFile' | 'tlsKeyPassphrase' | 'outboxUrl' | 'outboxConnection';

/** Options after defaults and validation: what the library runs on. */
export type ResolvedMoAmqpOptions = Readonly<Required<Omit<MoAmqpModuleOptions, OptionalOption>>> & {
  readonly [K in OptionalOption]: string | undefined;
};
