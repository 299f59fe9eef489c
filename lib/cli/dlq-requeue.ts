import type { ChannelModel, GetMessage, Options } from 'amqplib';
import { messageOf } from '../util/error-message';
import { CliIo } from './cli-io';
import { closeQuietly, printable, publishConfirmed, quietChannel, quietConfirmChannel } from './cli-broker';
import { headerText, originOf, requeueProperties } from './dlq-message';

/** What `dlq requeue` was asked to do. */
export interface RequeueRun {
  /** The consumer queue (the target with `toQueue`). */
  readonly queue: string;
  readonly dlq: string;
  readonly limit: number;
  readonly messageId: string | undefined;
  readonly toQueue: boolean;
  readonly stopped: () => boolean;
  readonly io: CliIo;
  readonly label: string;
}

/** Exit code 130: stopped by Ctrl-C or SIGTERM. */
export const STOPPED = 130;

/**
 * Puts messages of `run.dlq` back where they came from, one at a time: taken
 * without acknowledging, published (mandatory) with a confirm, and only then
 * acknowledged. Killed at any point, the unacknowledged ones go back to the
 * dead-letter queue: at worst the one in flight is sent twice. Messages it
 * leaves (origin unknown, no such exchange, returned as unroutable) are held
 * to the end, so each is looked at once, and handed back in their order when
 * the channel closes. Broker failures throw (exit 1).
 */
export async function requeueMessages(connection: ChannelModel, run: RequeueRun): Promise<number> {
  const { io, dlq } = run;
  const channel = await quietConfirmChannel(connection);
  let returned = false;
  channel.on('return', () => (returned = true));
  if (run.toQueue && !(await exists(connection, 'queue', run.queue))) {
    io.err(`${run.label}: there is no queue "${run.queue}" to requeue to (--to-queue)`);
    return 2;
  }
  const depth = (await channel.checkQueue(dlq)).messageCount;
  const exchanges = new Map<string, boolean>();
  let requeued = 0;
  let left = 0;
  const leave = (index: number, message: GetMessage, why: string) => {
    left++;
    io.err(`${run.label}: #${index} message_id=${headerText(message.properties.messageId)} stays in "${dlq}": ${why}`);
  };
  // Only the messages there at the start: one that fails again and returns is not taken twice.
  let index = 0;
  while (index < depth && requeued < run.limit && !run.stopped()) {
    const message = await channel.get(dlq, { noAck: false });
    if (!message) break;
    index++;
    if (run.messageId !== undefined && message.properties.messageId !== run.messageId) continue; // held, handed back
    const origin = originOf(message.properties.headers);
    if (typeof origin === 'string') {
      leave(index, message, origin);
      continue;
    }
    const [exchange, routingKey] = run.toQueue ? ['', run.queue] : [origin.exchange, origin.routingKey];
    if (exchange !== '' && !exchanges.has(exchange))
      exchanges.set(exchange, await exists(connection, 'exchange', exchange));
    if (exchange !== '' && !exchanges.get(exchange)) {
      leave(
        index,
        message,
        `exchange "${printable(exchange)}" (from ${origin.from}) does not exist or may not be used`,
      );
      continue;
    }
    let properties: Options.Publish;
    try {
      properties = requeueProperties(message.properties, origin, run.toQueue);
    } catch (err) {
      leave(index, message, `its properties cannot be sent again (${messageOf(err)})`);
      continue;
    }
    returned = false;
    const sent = publishConfirmed(channel, exchange, routingKey, message.content, properties);
    if (sent === undefined) {
      leave(index, message, 'amqplib cannot send its properties again');
      continue;
    }
    await sent;
    const to = run.toQueue
      ? `queue "${run.queue}" as [${printable(origin.routingKey)}]`
      : `[${printable(routingKey)}] on exchange "${printable(exchange)}"`;
    if (returned) {
      leave(index, message, `no queue takes ${to} (RabbitMQ returned it; sent on, it would be dropped)`);
      continue;
    }
    channel.ack(message);
    requeued++;
    io.out(`requeued #${index} message_id=${headerText(message.properties.messageId)} to ${to}`);
  }
  // Flushes the acknowledgements; what is held (left, filtered out) goes back in its order.
  await channel.close();
  const stopped = run.stopped() && index < depth && requeued < run.limit;
  const leftText = left > 0 ? `; ${left} left there (said above)` : '';
  io.out(`${stopped ? 'stopped: ' : ''}requeued ${requeued} message(s) from "${dlq}"${leftText}`);
  return stopped ? STOPPED : 0;
}

/** Whether the queue or exchange exists, asked on a channel of its own (a 404 closes the channel). */
async function exists(connection: ChannelModel, kind: 'queue' | 'exchange', name: string): Promise<boolean> {
  const channel = await quietChannel(connection);
  try {
    await (kind === 'queue' ? channel.checkQueue(name) : channel.checkExchange(name));
    await closeQuietly(channel);
    return true;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 404 || code === 403) return false;
    throw err;
  }
}
