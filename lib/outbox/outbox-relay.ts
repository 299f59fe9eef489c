import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  OnModuleInit,
} from '@nestjs/common';
import type { Options } from 'amqplib';
import type { Client, Pool, PoolClient } from 'pg';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { outboxSecrets, redactPostgresUrl } from '../config/outbox-options';
import { redactSecrets } from '../config/redact';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { messageOf } from '../util/error-message';
import { OutboxRow, LEADER_SQL, batchSql, deleteSql, notifyChannel } from './outbox-sql';
import { checkOutboxTable, loadPg } from './outbox-table';

/** Rows one batch transaction publishes at most (with `maxInFlight` as a ceiling). */
const BATCH = 500;
/** Without a notification, the relay looks this often: rows a dead relay left, a missed notification. */
const POLL_MS = 1_000;
/** After a failure (database or broker), the relay tries again after this, doubling to the ceiling. */
const RETRY_MS = 250;
const RETRY_MAX_MS = 5_000;

/** What the relay can say about itself, for the health indicator. */
export interface MoOutboxRelayStatus {
  readonly running: boolean;
  /** False while the last attempt to reach PostgreSQL failed. */
  readonly databaseReachable: boolean;
  /** What the last failed batch said (redacted); undefined after a success. */
  readonly lastError: string | undefined;
}

/**
 * Not public. Publishes committed outbox rows with confirms, oldest first, and
 * deletes each only once the broker confirmed it. One relay publishes at a time
 * (a transaction-scoped advisory lock per batch), so replicas can all run one:
 * when the publishing one dies, its transaction ends, its rows stay, and another
 * takes them on its next look. A re-sent row keeps its `message_id`.
 */
@Injectable()
export class MoOutboxRelay implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('MoOutboxRelay');
  private readonly on: boolean;
  private pool: Pool | undefined;
  private listener: Client | undefined;
  private loop: Promise<void> | undefined;
  private listening: Promise<void> | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private woken = false;
  private failures = 0;
  private state: { databaseReachable: boolean; lastError: string | undefined } = {
    databaseReachable: true,
    lastError: undefined,
  };
  private readonly secrets: string[];
  private readonly where: string;

  /** @internal Nest builds it, with `AMQP__OUTBOX=postgres`. */
  constructor(
    @Inject(MO_AMQP_OPTIONS) private readonly options: ResolvedMoAmqpOptions,
    private readonly runtime: MoAmqpRuntime,
  ) {
    this.on = options.enabled && options.outbox === 'postgres';
    this.secrets = outboxSecrets(options);
    this.where = `PostgreSQL at ${redactPostgresUrl(options.outboxUrl ?? '')}`;
  }

  get status(): MoOutboxRelayStatus | undefined {
    if (!this.on) return undefined;
    return { running: this.loop !== undefined && !this.stopping, ...this.state };
  }

  /** The table must exist with its columns: a missing migration stops start-up, naming the command. */
  async onModuleInit(): Promise<void> {
    if (!this.on) return;
    try {
      await checkOutboxTable(this.options, this.redact);
    } catch (err) {
      if (!(err instanceof MoAmqpConfigError)) {
        // Unreachable now: the relay waits for it like for any outage.
        this.logger.warn(`${this.where} did not answer the outbox table check: ${this.redact(err)}`);
        return;
      }
      await this.runtime.abortStart();
      throw err;
    }
  }

  /** Starts once every module has started: the runtime has waited for the broker by then. */
  onApplicationBootstrap(): void {
    if (!this.on || !this.options.outboxRelay) return;
    const { Pool } = loadPg();
    this.pool = new Pool({ connectionString: this.options.outboxUrl, max: 1, connectionTimeoutMillis: 5_000 });
    this.pool.on('error', (err) => this.fail(err));
    this.runtime.onShutdown(() => this.stop());
    this.listening = this.listen();
    this.loop = this.run();
    this.logger.log(
      `Relaying outbox rows of ${this.options.outboxTable} at ${this.where} to exchange "${this.options.exchange}"`,
    );
  }

  /** Finishes the batch in hand (its confirms still arrive: publishing stops after this), then stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    this.loop = undefined;
    await this.listener?.end().catch(() => undefined);
    await this.listening;
    this.listening = undefined;
    await this.pool?.end().catch(() => undefined);
    this.pool = undefined;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.loop || this.pool) await this.stop();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let taken = 0;
      try {
        taken = await this.batch();
        if (this.failures > 0) this.logger.log(`Relaying again (${this.where})`);
        this.failures = 0;
        this.state = { databaseReachable: true, lastError: undefined };
      } catch (err) {
        this.fail(err);
        await this.pause(Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** Math.min(this.failures++, 5)));
        continue;
      }
      if (taken < this.batchSize) await this.pause(POLL_MS);
    }
  }

  private get batchSize(): number {
    return Math.min(BATCH, this.options.maxInFlight);
  }

  /** One batch transaction: the lock, the oldest rows, their publishes, the confirmed ones deleted. */
  private async batch(): Promise<number> {
    const client: PoolClient = await this.pool!.connect();
    let broken: Error | undefined;
    // A client checked out of a pg Pool has no 'error' listener (the pool's is back only on
    // release): the server ending the connection between two statements (a restart, an
    // admin's pg_terminate_backend) would be an unhandled 'error' event, and end the process.
    const onError = (err: Error) => (broken ??= err);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const lock = await client.query<{ leader: boolean }>(LEADER_SQL, [this.options.outboxTable]);
      if (!lock.rows[0]?.leader) {
        await client.query('COMMIT');
        return 0;
      }
      const { rows } = await client.query<OutboxRow>(batchSql(this.options.outboxTable), [this.batchSize]);
      const sent = await Promise.allSettled(rows.map((row) => this.publish(row)));
      const confirmed = rows.filter((_, i) => sent[i].status === 'fulfilled').map((row) => row.id);
      if (confirmed.length > 0) await client.query(deleteSql(this.options.outboxTable), [confirmed]);
      await client.query('COMMIT');
      for (let i = 0; i < confirmed.length; i++) this.runtime.count('relayed');
      const failed = sent.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failed) throw failed.reason;
      return rows.length;
    } catch (err) {
      broken = err instanceof Error ? err : new Error(String(err));
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      // A client whose transaction failed is not reused: it may be the connection that broke.
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  private publish(row: OutboxRow): Promise<void> {
    const properties: Options.Publish = {
      persistent: true,
      contentType: 'application/json',
      messageId: row.message_id,
      timestamp: Number(row.published_at),
    };
    if (row.headers) properties.headers = row.headers;
    return this.runtime.forward(row.exchange, row.routing_key, Buffer.from(row.body, 'utf8'), properties);
  }

  /** Waits `ms`, or less when a commit notifies (or the relay stops). */
  private pause(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private notified(): void {
    if (this.wake) this.wake();
    else this.woken = true;
  }

  /** LISTEN on a connection of its own, opened again (after a pause) whenever it breaks. */
  private async listen(): Promise<void> {
    while (!this.stopping) {
      const { Client } = loadPg();
      const client: Client = new Client({ connectionString: this.options.outboxUrl, connectionTimeoutMillis: 5_000 });
      const ended = new Promise<void>((resolve) => {
        client.on('error', () => resolve());
        client.on('end', () => resolve());
      });
      // Known before it connects, so stop() can end it at any point.
      this.listener = client;
      try {
        await client.connect();
        if (!this.stopping) {
          client.on('notification', () => this.notified());
          await client.query(`LISTEN "${notifyChannel(this.options.outboxTable).replace(/"/g, '""')}"`);
          // Rows committed while it was away: look once now.
          this.notified();
          await ended;
        }
      } catch {
        // The batch loop reports the database's state; this only retries.
      }
      if (this.listener === client) this.listener = undefined;
      await client.end().catch(() => undefined);
      if (!this.stopping) await new Promise((resolve) => setTimeout(resolve, RETRY_MS * 4).unref());
    }
  }

  private fail(err: unknown): void {
    const text = this.redact(err);
    const database = !(err instanceof Error && err.name === 'MoPublishError');
    if (this.state.lastError === undefined) {
      this.logger.warn(
        database
          ? `${this.where} failed for the outbox relay, retrying (the rows wait in ${this.options.outboxTable}): ${text}`
          : `The outbox relay could not publish, retrying (the rows wait in ${this.options.outboxTable}): ${text}`,
      );
    }
    this.state = { databaseReachable: !database, lastError: text };
  }

  private readonly redact = (err: unknown): string => redactSecrets(messageOf(err), this.secrets);
}
