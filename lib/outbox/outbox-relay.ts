import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  OnModuleInit,
} from '@nestjs/common';
import type { Client, Pool } from 'pg';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { OUTBOX_FIELDS, outboxSecrets, redactPostgresUrl } from '../config/outbox-options';
import { redactSecrets } from '../config/redact';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { messageOf } from '../util/error-message';
import { OutboxRow, LEADER_SQL, batchSql, deleteSql, notifyChannel } from './outbox-sql';
import { checkOutboxTable, explainPostgresRefusal } from './outbox-check';
import { loadPg } from './outbox-table';
import { CheckedOut, RELAY_WINDOW, Waker, checkout, relayWindow, rowProperties } from './relay-window';

/** Rows one read takes at most (with `maxInFlight` as a ceiling). */
const BATCH = 500;
/** Rows one pass (one lock transaction) takes at most, before it lets the lock go and reads afresh. */
const PASS_ROWS = 20 * BATCH;
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
  /** The table is used here: rows are written (and relayed, with `relays`). */
  private readonly on: boolean;
  private readonly relays: boolean;
  /** True once the table check passed; a relay that started without its database checks first. */
  private checked = false;
  private pool: Pool | undefined;
  private listener: Client | undefined;
  private loop: Promise<void> | undefined;
  private listening: Promise<void> | undefined;
  private stopping = false;
  private readonly waker = new Waker();
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
    this.on = options.outbox === 'postgres';
    // With AMQP off, rows are still written (nothing produced in a transaction is dropped): a relay elsewhere sends them.
    this.relays = this.on && options.enabled && options.outboxRelay;
    this.secrets = outboxSecrets(options);
    this.where = `PostgreSQL at ${redactPostgresUrl(options.outboxUrl ?? '')}`;
  }

  get status(): MoOutboxRelayStatus | undefined {
    if (!this.on) return undefined;
    return { running: this.loop !== undefined && !this.stopping, ...this.state };
  }

  /**
   * What waiting cannot change stops start-up at once: a refused login, an unknown database,
   * a missing table or right, each named with its fix. A database that does not answer is an
   * outage, not a setting: start-up goes on, the relay waits for it and checks then.
   */
  async onModuleInit(): Promise<void> {
    if (!this.on) return;
    try {
      await this.check();
    } catch (err) {
      const refusal = this.refusalOf(err);
      if (!refusal) {
        const text = this.redact(err);
        // Only a relay looks again (and so can say when it is back).
        if (this.relays) this.state = { databaseReachable: false, lastError: text };
        this.logger.warn(
          `${this.where} (${OUTBOX_FIELDS.outboxUrl.env}) is not reachable at start-up: ${text}. Starting all the same: ` +
            `rows committed meanwhile wait in ${this.options.outboxTable}; ${this.relays ? 'the relay waits for it and checks the outbox table then' : 'the table is checked at the next start'}`,
        );
        return;
      }
      await this.runtime.abortStart(refusal);
      throw refusal;
    }
    if (!this.options.enabled) {
      this.logger.log(
        `AMQP is disabled: events produced in transactions are written to ${this.options.outboxTable} at ${this.where}, for a relay elsewhere (${OUTBOX_FIELDS.outbox.env}=off writes none)`,
      );
    }
  }

  private async check(): Promise<void> {
    const warnings = await checkOutboxTable(this.options, { writes: true, relays: this.relays }, this.redact);
    for (const warning of warnings) this.logger.warn(warning);
    this.checked = true;
  }

  /** Starts once every module has started (the broker may still be away: the relay waits for it too). */
  onApplicationBootstrap(): void {
    if (!this.relays) return;
    const { Pool } = loadPg();
    this.pool = new Pool({ connectionString: this.options.outboxUrl, max: 2, connectionTimeoutMillis: 5_000 });
    // A delete lost with a crash of PostgreSQL itself means a row sent twice, never one lost.
    this.pool.on('connect', (client) => void client.query('SET synchronous_commit TO off').catch(() => undefined));
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
    this.waker.wake();
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
      let more = false;
      try {
        more = await this.batch();
        if (this.failures > 0) this.logger.log(`Relaying again (${this.where})`);
        this.failures = 0;
        this.state = { databaseReachable: true, lastError: undefined };
      } catch (err) {
        this.fail(err);
        await this.pause(Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** Math.min(this.failures++, 5)));
        continue;
      }
      if (!more) await this.pause(POLL_MS);
    }
  }

  private get batchSize(): number {
    return Math.min(BATCH, this.options.maxInFlight);
  }

  /**
   * One pass: a transaction holds the lock while the oldest rows are published, chunk after
   * chunk, and a second connection deletes the confirmed ones as they come (each delete
   * commits at once), so a relay killed mid-pass leaves at most `RELAY_WINDOW` rows to be sent
   * again. Resolves with true when more rows may wait.
   */
  private async batch(): Promise<boolean> {
    if (!this.checked) await this.check();
    const lock = await checkout(this.pool!);
    try {
      await lock.client.query('BEGIN');
      const leader = await lock.client.query<{ leader: boolean }>(LEADER_SQL, [this.options.outboxTable]);
      const more = leader.rows[0]?.leader ? await this.relay(lock) : false;
      await lock.client.query('COMMIT');
      return more;
    } catch (err) {
      lock.broke(err);
      await lock.client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      lock.release();
    }
  }

  private async relay(lock: CheckedOut): Promise<boolean> {
    const table = this.options.outboxTable;
    const deletes = await checkout(this.pool!);
    try {
      return await relayWindow(Math.min(RELAY_WINDOW, this.options.maxInFlight), {
        chunk: this.batchSize,
        load: async (after) =>
          (await lock.client.query<OutboxRow>(batchSql(table), [after ?? '0', this.batchSize])).rows,
        // The lock is let go now and then, and once the relay stops nothing more is published.
        goOn: (taken) => taken < PASS_ROWS,
        stopped: () => this.stopping,
        publish: (row) => this.publish(row),
        remove: async (ids) => (await deletes.client.query(deleteSql(table), [ids])).rowCount ?? 0,
        lost: () => lock.error,
        removed: (count) => {
          for (let i = 0; i < count; i++) this.runtime.count('relayed');
        },
      });
    } catch (err) {
      deletes.broke(err);
      throw err;
    } finally {
      deletes.release();
    }
  }

  private publish(row: OutboxRow): Promise<void> {
    return this.runtime.forward(row.exchange, row.routing_key, Buffer.from(row.body, 'utf8'), rowProperties(row));
  }

  /** Waits `ms`, or less when a commit notifies (or the relay stops). */
  private pause(ms: number): Promise<void> {
    return this.stopping ? Promise.resolve() : this.waker.pause(ms);
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
          client.on('notification', () => this.waker.wake());
          await client.query(`LISTEN "${notifyChannel(this.options.outboxTable).replace(/"/g, '""')}"`);
          // Rows committed while it was away: look once now.
          this.waker.wake();
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
    const refusal = this.refusalOf(err);
    const text = this.redact(refusal ?? err);
    const database = !(err instanceof Error && err.name === 'MoPublishError');
    if (refusal) {
      // A setting to fix (a password changed, a right revoked): an error, once per cause.
      if (this.state.lastError !== text) this.logger.error(`The outbox relay cannot work, retrying: ${text}`);
      // Checked again before anything more is published: a right missing stops the resending.
      this.checked = false;
    } else if (this.state.lastError === undefined) {
      this.logger.warn(
        database
          ? `${this.where} failed for the outbox relay, retrying (the rows wait in ${this.options.outboxTable}): ${text}`
          : `The outbox relay could not publish, retrying (the rows wait in ${this.options.outboxTable}): ${text}`,
      );
    }
    this.state = { databaseReachable: !database, lastError: text };
  }

  /** What waiting cannot change (a setting to fix), as a configuration error with its fix. */
  private refusalOf(err: unknown): MoAmqpConfigError | undefined {
    return err instanceof MoAmqpConfigError ? err : explainPostgresRefusal(err, this.redact(err), this.options);
  }

  private readonly redact = (err: unknown): string => redactSecrets(messageOf(err), this.secrets);
}
