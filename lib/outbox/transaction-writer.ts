import { Inject, Injectable, OnModuleInit, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { createRequire } from 'node:module';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { brokerUrlsOf } from '../config/mo-amqp-options.schema';
import { OUTBOX_FIELDS, outboxSecrets } from '../config/outbox-options';
import { errorRedactor } from '../config/redact';
import { tlsSecrets } from '../config/tls';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { MoPublishError } from '../errors/mo-publish.error';
import { MoOutgoingMessage } from '../events/mo-event';
import { MO_AMQP_OPTIONS } from '../mo-amqp.constants';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { startSending } from '../telemetry/tracing';
import { insertSql } from './outbox-sql';
import { SqlRunner, sqlRunnerFor } from './sql-runners';

/** What this package needs of `@nestjs-cls/transactional`'s `TransactionHost`. */
interface TransactionHostLike {
  isTransactionActive(): boolean;
  readonly tx: unknown;
}

/** One event row, as written. */
export interface OutboxEntry {
  readonly messageId: string;
  readonly exchange: string;
  readonly routingKey: string;
  readonly body: string;
  readonly headers: Record<string, unknown> | undefined;
  /** The AMQP `timestamp` property (seconds), fixed when the row is written. */
  readonly timestamp: number;
}

/** Rows one INSERT takes at most (6 parameters each; PostgreSQL takes 65,535). */
const MAX_ROWS = 1_000;

/** Rows that go into one INSERT, and the callers waiting for it. */
interface Batch {
  entries: OutboxEntry[];
  settle: { resolve(): void; reject(err: unknown): void }[];
}

const SETUP =
  'ClsModule.forRoot({ plugins: [new ClsPluginTransactional({ adapter: … })] }) from nestjs-cls and @nestjs-cls/transactional';

/**
 * Not public. Writes an event into the outbox table through the transaction
 * that `@nestjs-cls/transactional` holds for the current call, so it commits
 * or rolls back with the change. Inert with `outbox: 'off'`; with AMQP
 * disabled it still writes (the relay runs elsewhere).
 * The publishing side (`MoEventsService`, `@MoEvent`'s transaction point)
 * decides: in a transaction, `send` here; otherwise the runtime sends.
 */
@Injectable()
export class MoOutboxWriter implements OnModuleInit {
  private host: TransactionHostLike | undefined;
  /** Per transaction object: the insert running now, and the rows waiting for the next one. */
  private readonly writes = new WeakMap<object, { running: Promise<void> | undefined; next: Batch | undefined }>();

  constructor(
    @Inject(MO_AMQP_OPTIONS) private readonly options: ResolvedMoAmqpOptions,
    private readonly moduleRef: ModuleRef,
    /** Keeps the counts (`outboxed`, `failed`); absent only where a test builds the writer alone. */
    @Optional() private readonly runtime?: MoAmqpRuntime,
  ) {}

  /** Finds the transaction host; without one the outbox cannot work, and start-up says so. */
  onModuleInit(): void {
    // With AMQP off too: the rows wait for a relay elsewhere (docs/outbox.md).
    if (this.options.outbox !== 'postgres') return;
    const name = this.options.outboxConnection;
    let token: unknown;
    try {
      const transactional = createRequire(__filename)('@nestjs-cls/transactional') as {
        getTransactionHostToken(connectionName?: string): unknown;
      };
      token = transactional.getTransactionHostToken(name);
    } catch {
      throw this.setupError('@nestjs-cls/transactional is not installed');
    }
    try {
      this.host = this.moduleRef.get(token as string, { strict: false }) as TransactionHostLike;
    } catch {
      throw this.setupError(
        name === undefined
          ? 'no TransactionHost is registered'
          : `no TransactionHost is registered for connectionName "${name}"`,
      );
    }
  }

  /** True when the current call runs inside a transaction of the outbox's connection. */
  get inTransaction(): boolean {
    return this.host?.isTransactionActive() ?? false;
  }

  /**
   * The event becomes a row of the current transaction, and the relay publishes it once
   * committed. Rejects with `MoPublishError` (`outbox-failed`) when the row cannot be written:
   * the transaction then cannot commit.
   */
  async send(event: MoOutgoingMessage, messageId: string): Promise<'outboxed'> {
    const { exchange } = this.options;
    // The producer span; its trace headers go into the row, so the relayed message carries them.
    const sending = startSending(exchange, event.routingKey, messageId, event.body.length);
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      await this.write({
        messageId,
        exchange,
        routingKey: event.routingKey,
        body: event.body,
        headers: sending.headers,
        timestamp,
      });
    } catch (err) {
      this.runtime?.count('failed');
      sending.end('failed', 'outbox-failed');
      const redact = errorRedactor(brokerUrlsOf(this.options), [
        ...tlsSecrets(this.options),
        ...outboxSecrets(this.options),
      ]);
      const text =
        `${event.routingKey} (message_id ${messageId}) could not be written to the outbox table ` +
        `"${this.options.outboxTable}" in the current transaction, which cannot commit now: ${redact(err)}`;
      throw new MoPublishError(text, 'outbox-failed', event.routingKey, messageId, { cause: err });
    }
    this.runtime?.count('outboxed');
    sending.end('outboxed');
    return 'outboxed';
  }

  /**
   * Inserts the row through the current transaction; rejects when the insert fails (the
   * transaction then cannot commit). Rows of one transaction are written one statement at a
   * time, in the order given (a driver's connection runs one query at a time); those that
   * arrive while one is running go together in the next.
   */
  write(entry: OutboxEntry): Promise<void> {
    const tx = this.host?.tx;
    const run: SqlRunner = sqlRunnerFor(tx);
    const key = tx as object;
    let writes = this.writes.get(key);
    if (!writes) this.writes.set(key, (writes = { running: undefined, next: undefined }));
    return new Promise<void>((resolve, reject) => {
      const queue = writes;
      if (!queue.next || queue.next.entries.length >= MAX_ROWS) {
        const batch: Batch = (queue.next = { entries: [], settle: [] });
        const start = () => {
          if (queue.next === batch) queue.next = undefined;
          return this.insert(run, batch);
        };
        queue.running = (queue.running ?? Promise.resolve()).then(start, start);
      }
      queue.next.entries.push(entry);
      queue.next.settle.push({ resolve, reject });
    });
  }

  private async insert(run: SqlRunner, batch: Batch): Promise<void> {
    const params: unknown[] = [];
    for (const entry of batch.entries) {
      const headers = entry.headers === undefined ? null : JSON.stringify(entry.headers);
      params.push(entry.messageId, entry.exchange, entry.routingKey, entry.body, headers, entry.timestamp);
    }
    try {
      await run(insertSql(this.options.outboxTable, batch.entries.length), params);
      for (const { resolve } of batch.settle) resolve();
    } catch (err) {
      for (const { reject } of batch.settle) reject(err);
    }
  }

  private setupError(why: string): MoAmqpConfigError {
    return new MoAmqpConfigError([
      {
        name: `${OUTBOX_FIELDS.outbox.env} (outbox)`,
        received: "'postgres'",
        allowed: `postgres only with ${SETUP} in the application (${why})`,
      },
    ]);
  }
}
