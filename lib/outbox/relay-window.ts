import type { Options } from 'amqplib';
import type { Pool, PoolClient } from 'pg';
import type { OutboxRow } from './outbox-sql';

/**
 * Rows between their publish and their committed delete, at most: what a relay
 * killed at any moment leaves for the next one to send again (each copy with
 * its `message_id`). Deleting in small steps as confirms arrive, instead of once
 * per batch, is what keeps that resend this small.
 */
export const RELAY_WINDOW = 150;

/** What one pass over the backlog needs: rows to send, how to send one, and how to delete confirmed ones. */
export interface RelayWindowSteps {
  /** The next rows in id order after `after` (from the start: undefined); fewer than a chunk: the end. */
  load(after: string | undefined): Promise<OutboxRow[]>;
  /** The rows one `load` returns at most. */
  readonly chunk: number;
  /** False ends the pass after the chunk in hand (the pass is long enough). */
  goOn(taken: number): boolean;
  /** True once the relay stops: nothing more is published, what is in flight settles. */
  stopped(): boolean;
  /** Resolves once the broker confirmed the row. */
  publish(row: OutboxRow): Promise<void>;
  /** Deletes rows by id, committed when it resolves (an autocommit statement), with how many it removed. */
  remove(ids: string[]): Promise<number>;
  /** Set once the reading connection broke: its transaction, and the lock, are gone, so publishing stops. */
  lost(): Error | undefined;
  /** Called with how many rows one delete removed. */
  removed(count: number): void;
}

/**
 * Publishes the backlog in id order with at most `window` rows unsettled,
 * deleting the confirmed ones as they come, one statement at a time (confirms
 * that arrive during a delete go into the next). The next chunk is read while
 * the one in hand is sent, so the window never empties between chunks. Stops
 * publishing at the first failure, lets what is in flight settle, and rejects
 * with that failure: the rows not confirmed stay, for the next pass. Resolves
 * with true when the last chunk was full (more may wait).
 */
export async function relayWindow(window: number, steps: RelayWindowSteps): Promise<boolean> {
  let unsettled = 0;
  let failure: { error: unknown } | undefined;
  let deleteFailed = false;
  let confirmed: string[] = [];
  let deleting = false;
  let wake: (() => void) | undefined;
  /** Lets the publishing loop look again (a slot freed, or a failure to stop at). */
  const wakeUp = () => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const freed = (count: number) => {
    unsettled -= count;
    wakeUp();
  };
  const slot = () => new Promise<void>((resolve) => (wake = resolve));
  const fail = (error: unknown) => {
    failure ??= { error };
    wakeUp();
  };

  const drain = async () => {
    deleting = true;
    while (confirmed.length > 0) {
      const ids = confirmed;
      confirmed = [];
      // After a failed delete the rest is not tried: those rows are sent again, never lost.
      // After a failed publish, confirmed rows are still deleted: fewer sent twice.
      if (!deleteFailed) {
        try {
          steps.removed(await steps.remove(ids));
        } catch (err) {
          deleteFailed = true;
          fail(err);
        }
      }
      freed(ids.length);
    }
    deleting = false;
  };

  let taken = 0;
  let full = false;
  let chunk: OutboxRow[] = [];
  try {
    chunk = await steps.load(undefined);
  } catch (err) {
    fail(err);
  }
  while (chunk.length > 0 && !failure && !steps.stopped()) {
    taken += chunk.length;
    full = chunk.length >= steps.chunk;
    const next = full && steps.goOn(taken) ? steps.load(chunk[chunk.length - 1].id) : Promise.resolve([]);
    // A failed read stops this chunk too: the connection (and with it the lock) may be gone.
    next.catch(fail);
    for (const row of chunk) {
      while (unsettled >= window && !failure) await slot();
      const lost = steps.lost();
      if (lost) fail(lost);
      if (failure || steps.stopped()) break;
      unsettled++;
      steps.publish(row).then(
        () => {
          confirmed.push(row.id);
          if (!deleting) void drain();
        },
        (err: unknown) => {
          fail(err);
          freed(1);
        },
      );
    }
    try {
      chunk = await next;
    } catch (err) {
      fail(err);
    }
  }
  while (unsettled > 0) await slot();
  if (failure) throw failure.error;
  return full;
}

/** A client checked out of the pool, and how to give it back. */
export interface CheckedOut {
  readonly client: PoolClient;
  /** The error the connection met, if it broke. */
  readonly error: Error | undefined;
  /** Marks it failed: it is then closed on release, not reused (it may be the connection that broke). */
  broke(err: unknown): void;
  release(): void;
}

/**
 * A client of the pool, watched: one checked out has no 'error' listener (the pool's is back
 * only on release), and the server ending the connection between two statements (a restart,
 * an admin's pg_terminate_backend) would be an unhandled 'error' event, ending the process.
 */
export async function checkout(pool: Pool): Promise<CheckedOut> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error) => (broken ??= err);
  client.on('error', onError);
  return {
    client,
    get error() {
      return broken;
    },
    broke: (err) => (broken ??= err instanceof Error ? err : new Error(String(err))),
    release: () => {
      client.removeListener('error', onError);
      client.release(broken);
    },
  };
}

/** The AMQP properties of a row's message: those of the publish it stands for. */
export function rowProperties(row: OutboxRow): Options.Publish {
  const properties: Options.Publish = {
    persistent: true,
    contentType: 'application/json',
    messageId: row.message_id,
    timestamp: Number(row.published_at),
  };
  if (row.headers) properties.headers = row.headers;
  return properties;
}

/** A pause that a wake-up ends early; a wake-up with nobody pausing ends the next pause at once. */
export class Waker {
  private resume: (() => void) | undefined;
  private woken = false;

  pause(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.resume = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.resume = done;
    });
  }

  wake(): void {
    if (this.resume) this.resume();
    else this.woken = true;
  }
}
