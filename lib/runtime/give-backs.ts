import type { Message } from 'amqplib';

/** What a message is known by: where it came from, its id and its bytes. */
export type MessageKey = {
  readonly fields: Pick<Message['fields'], 'exchange' | 'routingKey'>;
  readonly properties: { readonly messageId?: unknown };
  readonly content: Buffer;
};
import { createHash } from 'node:crypto';

/**
 * How often one message may go back to its queue because what it needed
 * published (a retry or dead-letter copy, the delay agent's forward) could not
 * be, before it is rejected to the queue's dead-letter exchange instead. Counted
 * here, not by the broker: a requeueing nack adds to a quorum queue's
 * `x-delivery-count` up to RabbitMQ 4.2 and no longer from 4.3, and a classic
 * queue counts nothing, so the broker's count would bound the loop on some
 * versions only.
 */
export const MAX_GIVE_BACKS = 10;

/** The pause before a message goes back: 1 s, doubling, at most 30 s (about 3 minutes for all ten). */
export function giveBackPauseMs(giveBack: number): number {
  return Math.min(1_000 * 2 ** Math.min(giveBack - 1, 5), 30_000);
}

/** Messages counted at once; the oldest count is forgotten beyond it (memory stays bounded). */
const CAPACITY = 10_000;

/**
 * Counts give-backs per message, in this process (a restart starts again from
 * zero: still bounded, by restarts). A message is known by its exchange, routing
 * key, message id and body, as a redelivery has them all the same; OS2mo's own
 * messages carry no message id, and two identical ones share a count.
 */
export class GiveBacks {
  private readonly counts = new Map<string, number>();

  constructor(private readonly limit = MAX_GIVE_BACKS) {}

  /** One more give-back of `message`: which one (1, 2, …), or undefined once past the limit (then forgotten). */
  another(message: MessageKey): number | undefined {
    const key = keyOf(message);
    const count = (this.counts.get(key) ?? 0) + 1;
    this.counts.delete(key); // kept in order of last use
    if (count > this.limit) return undefined;
    this.counts.set(key, count);
    if (this.counts.size > CAPACITY) this.counts.delete(this.counts.keys().next().value as string);
    return count;
  }

  /** `message` went through: its count, if any, is dropped. Costs nothing while nothing is counted. */
  done(message: MessageKey): void {
    if (this.counts.size > 0) this.counts.delete(keyOf(message));
  }
}

function keyOf({ fields, properties, content }: MessageKey): string {
  const id = typeof properties.messageId === 'string' ? properties.messageId : '';
  return createHash('sha256')
    .update(`${fields.exchange}\0${fields.routingKey}\0${id}\0`)
    .update(content)
    .digest('base64');
}
