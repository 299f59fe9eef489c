import type { Options } from 'amqplib';
import { DAMAGED_DIR, DiskSpool, SPOOL_LEASE_MS, SpoolFullError } from '../spool/disk-spool';
import { settlesWithin } from '../util/settles-within';
import { ConfirmPublisher, PublishFailure } from './confirm-publisher';
import { messageOf } from '../util/error-message';

// Spooled records go back to the broker this many at a time (confirms awaited per batch).
const DRAIN_BATCH = 500;
// While the spool holds anything, it is tried again this often (a reconnect tries at once).
const DRAIN_RETRY_MS = 2_000;

/** Where an event went: to the broker (confirmed) or to disk, to be sent later. */
export type Outcome = 'confirmed' | 'spooled';

function isUnsendable(result: PromiseSettledResult<void>): boolean {
  return result.status === 'rejected' && result.reason instanceof PublishFailure && result.reason.unsendable;
}

/** A declaration the broker answers with 403 (access refused) or 406 (precondition failed) will not pass later either. */
function refusedForGood(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 403 || code === 406;
}

export interface SpooledPublisherLogger {
  warn(message: string): void;
  error(message: string): void;
}

/**
 * The publish path with the spool around it. An event goes to the broker and
 * counts once confirmed; it goes to the spool (fsynced before the caller hears)
 * when there is no channel, when the broker does not confirm in time, when too
 * many wait, or when the spool already holds events (so they keep their order).
 * The spool is drained in order whenever a channel is open.
 */
export class SpooledPublisher {
  private draining: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Looks for spools other processes abandoned (another host's, once its lease ran out). */
  private scanTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly active = new Set<Promise<unknown>>();
  /** Events sent again from the spool and confirmed. */
  resent = 0;

  constructor(
    private readonly publisher: ConfirmPublisher,
    private readonly spool: DiskSpool | undefined,
    private readonly maxInFlight: number,
    private readonly logger: SpooledPublisherLogger,
  ) {}

  /**
   * Resolves with where the event went; rejects with a `PublishFailure` when it
   * could go nowhere (no spool, or the spool failed or is full).
   */
  send(exchange: string, routingKey: string, content: Buffer, properties: Options.Publish): Promise<Outcome> {
    const sending = this.route(exchange, routingKey, content, properties);
    this.active.add(sending);
    void sending.finally(() => this.active.delete(sending)).catch(() => undefined);
    return sending;
  }

  /** Drains what it can now: at start-up, after a reconnect, and now and then for abandoned spools. */
  kick(): void {
    if (!this.spool || this.closed) return;
    this.scanTimer ??= setInterval(() => this.kick(), SPOOL_LEASE_MS).unref();
    this.draining ??= this.drain()
      .catch((err: unknown) => {
        // A disk error: the records stay where they are and are tried again.
        this.logger.error(`Reading the spool failed (${messageOf(err)}); retrying`);
        this.scheduleDrain(DRAIN_RETRY_MS);
      })
      .finally(() => (this.draining = undefined));
  }

  /**
   * At shutdown: waits up to `boundMs` for confirms, then spools what is still
   * waiting (the publisher gives it up as `closed`), and waits for those writes.
   */
  async close(boundMs: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.scanTimer);
    await settlesWithin(this.publisher.whenIdle(), boundMs);
    await this.publisher.close();
    await Promise.allSettled([...this.active]);
    await this.draining?.catch(() => undefined);
    await this.spool?.close();
  }

  private async route(
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: Options.Publish,
  ): Promise<Outcome> {
    const spool = this.spool;
    if (
      spool &&
      (this.closed || !this.publisher.ready || !spool.isEmpty() || this.publisher.size >= this.maxInFlight)
    ) {
      return this.toSpool(exchange, routingKey, content, properties);
    }
    if (!spool && this.publisher.size >= this.maxInFlight) throw new PublishFailure('overloaded');
    try {
      await this.publisher.publish(exchange, routingKey, content, properties);
      return 'confirmed';
    } catch (err) {
      const failure = err instanceof PublishFailure ? err : new PublishFailure('rejected', err);
      // Not confirmed in time, or the app is closing: on disk it waits for the broker.
      if (spool && (failure.reason === 'timeout' || failure.reason === 'closed')) {
        return this.toSpool(exchange, routingKey, content, properties);
      }
      throw failure;
    }
  }

  private async toSpool(
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: Options.Publish,
  ): Promise<Outcome> {
    try {
      await (this.spool as DiskSpool).append({ exchange, routingKey, content, properties });
    } catch (err) {
      throw new PublishFailure(err instanceof SpoolFullError ? 'spool-full' : 'spool-failed', err);
    }
    if (this.closed) await (this.spool as DiskSpool).close();
    else this.scheduleDrain(0);
    return 'spooled';
  }

  private scheduleDrain(ms: number): void {
    if (this.retryTimer !== undefined || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, ms);
  }

  private async drain(): Promise<void> {
    const spool = this.spool as DiskSpool;
    // Lists the spool directory at least once: it may hold what another process left.
    for (let look = true; !this.closed && this.publisher.ready && (look || !spool.isEmpty()); look = false) {
      for (const file of await spool.takeSegments()) {
        const records = await spool.readSegment(file);
        try {
          // An exchange the broker lost (or a test deleted) would refuse every record
          // for ever: declare it again first, as the publisher does.
          for (const exchange of new Set(records.map((r) => r.exchange))) {
            if (exchange === '') continue;
            try {
              await this.publisher.assertExchange(exchange);
            } catch (err) {
              if (!refusedForGood(err)) throw err;
              // Refused for good (another type, no permission): set aside, so the rest goes on.
              const refused = records.filter((r) => r.exchange === exchange);
              const aside = await spool.setAside(
                file,
                refused,
                records.filter((r) => r.exchange !== exchange),
              );
              this.logger.error(
                `RabbitMQ refuses exchange "${exchange}" (${messageOf(err)}): ` +
                  `${refused.length} spooled event(s) for it are set aside in ${aside}, not sent; the rest are`,
              );
              this.scheduleDrain(DRAIN_RETRY_MS); // the broker closed the channel; it reopens
              return;
            }
          }
          for (let i = 0; i < records.length; i += DRAIN_BATCH) {
            // One channel keeps them in order; the batch's confirms are awaited together.
            const batch = records.slice(i, i + DRAIN_BATCH);
            const sent = await Promise.allSettled(
              batch.map((r) => this.publisher.publish(r.exchange, r.routingKey, r.content, r.properties)),
            );
            const unsendable = batch.filter((_, n) => isUnsendable(sent[n]));
            if (unsendable.length > 0) {
              // A record no retry can send would block every one behind it: set aside; the segment
              // keeps only what is not confirmed yet, so nothing already sent goes twice.
              const done = new Set([...records.slice(0, i), ...batch.filter((_, n) => sent[n].status === 'fulfilled')]);
              const keep = records.filter((r) => !done.has(r) && !unsendable.includes(r));
              const aside = await spool.setAside(file, unsendable, keep, DAMAGED_DIR);
              this.resent += done.size;
              const why = messageOf((sent[batch.indexOf(unsendable[0])] as PromiseRejectedResult).reason.cause);
              this.logger.error(
                `${unsendable.length} spooled record(s) of ${file} cannot be sent (${why}): set aside in ${aside}; the rest are sent`,
              );
              this.scheduleDrain(0);
              return;
            }
            const failed = sent.find((result) => result.status === 'rejected');
            if (failed) throw (failed as PromiseRejectedResult).reason;
          }
        } catch (err) {
          // The broker went away again: the segment stays and is sent again (duplicates possible).
          this.logger.warn(`Sending the spool again stopped (${messageOf(err)}); retrying`);
          this.scheduleDrain(DRAIN_RETRY_MS);
          return;
        }
        await spool.remove(file);
        this.resent += records.length;
      }
    }
    if (!spool.isEmpty()) this.scheduleDrain(DRAIN_RETRY_MS);
  }
}
