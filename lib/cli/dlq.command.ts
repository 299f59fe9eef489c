import type { Channel, GetMessage } from 'amqplib';
import { parseArgs } from 'node:util';
import { QUEUE_NAME } from '../config/amqp-rules';
import { loadMoAmqpOptionsFromEnv } from '../config/mo-amqp-env';
import { CliIo } from './cli-io';
import { CliBroker, closeQuietly, connectCli, quietChannel } from './cli-broker';
import { listLine, showJson } from './dlq-message';
import { requeueMessages } from './dlq-requeue';

const HELP = `Usage: mo-amqp dlq <list|show|requeue|purge> <queue> [options]

Dead-lettered messages. <queue> is an @MoEventSubscribe queue, whose failures
wait in <queue>.dlq, or that .dlq queue itself (a name ending in .dlq is taken
as the dead-letter queue); the delay agent's is <AMQP__DELAY_PREFIX>.dlq.

  list <queue> [--limit N]         the first N messages (default 100): message id, the body's
                                   uuid and object_uuid (- none, invalid, not-json, too-large),
                                   routing key and exchange it came from, attempt, queue, reason
  show <queue> <index|message_id>  one message whole, as JSON; an index is its number in list
  requeue <queue> [--limit N] [--message-id ID] [--to-queue]
                                   puts up to N messages (default 100) back where they came
                                   from: their exchange and routing key (x-mo-amqp-exchange and
                                   x-mo-amqp-routing-key, else RabbitMQ's x-death), their own
                                   properties and body, without the dead-letter headers, with
                                   x-mo-amqp-requeued counting. Each is removed from the .dlq only
                                   once RabbitMQ has confirmed it (interrupted: at worst one twice).
                                   Every queue bound there gets it again; --to-queue sends it to
                                   <queue> alone (the consumer reads the original routing key from
                                   the headers, as on its own retries). A message whose headers do
                                   not say where, or that no queue would take, stays, said on stderr.
  purge <queue> --yes              deletes every message of the .dlq; without --yes, says how many
                                   would go and exits 2

list and show take the messages without acknowledging them and hand them back by
closing the channel: nothing is removed, the order is kept (classic queues; a
quorum queue may put them at the end), and they come back marked redelivered.

Options:
  --limit N          how many messages at most, 1-1000000
  --message-id ID    requeue only the messages with this message_id
  --to-queue         requeue to <queue> through the default exchange, not to the original exchange
  --yes              purge for real
  -h, --help         this text

Exit codes: 0 done, 1 the broker failed, 2 bad arguments or configuration (also: no such
queue, purge without --yes, show of a message that is not there), 130 requeue stopped by
Ctrl-C or SIGTERM (what was confirmed is out of the .dlq, the rest is still in it).`;

const ACTIONS = ['list', 'show', 'requeue', 'purge'] as const;
type Action = (typeof ACTIONS)[number];
const MAX_LIMIT = 1_000_000;

/** The consumer queue and its dead-letter queue, from either name; or what is wrong with it. */
export function dlqNamesOf(name: string): { queue: string; dlq: string } | string {
  const queue = name.endsWith('.dlq') && name.length > 4 ? name.slice(0, -4) : name;
  if (!QUEUE_NAME.pattern.test(queue)) return `"${name}" is not a queue name: ${QUEUE_NAME.allowed}`;
  return { queue, dlq: `${queue}.dlq` };
}

/** `mo-amqp dlq list|show|requeue|purge <queue>`. */
export async function dlqCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      limit: { type: 'string' },
      'message-id': { type: 'string' },
      'to-queue': { type: 'boolean' },
      yes: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const [action, name, ...rest] = positionals as [Action | undefined, string | undefined, ...string[]];
  const fail = (why: string) => {
    io.err(`mo-amqp dlq: ${why}; see "mo-amqp dlq --help"`);
    return 2;
  };
  if (!ACTIONS.includes(action as Action))
    return fail(`expected one of ${ACTIONS.join(', ')}, got ${JSON.stringify(action ?? '')}`);
  if (name === undefined) return fail(`${action} needs a queue`);
  if (rest.length !== (action === 'show' ? 1 : 0)) {
    return fail(
      action === 'show' ? 'show needs a queue and one index or message_id' : `unexpected argument "${rest[0]}"`,
    );
  }
  const misplaced = (
    [
      ['limit', ['list', 'requeue']],
      ['message-id', ['requeue']],
      ['to-queue', ['requeue']],
      ['yes', ['purge']],
    ] as const
  ).find(
    ([option, actions]) => values[option] !== undefined && !(actions as readonly string[]).includes(action as string),
  );
  if (misplaced) return fail(`--${misplaced[0]} goes with ${misplaced[1].join(' or ')} only`);
  const limitText = values.limit ?? '100';
  const limit = /^\d{1,7}$/.test(limitText) ? Number(limitText) : NaN;
  if (!(limit >= 1 && limit <= MAX_LIMIT))
    return fail(`--limit "${limitText}" is not a whole number from 1 to ${MAX_LIMIT}`);
  const names = dlqNamesOf(name);
  if (typeof names === 'string') return fail(names);

  const options = loadMoAmqpOptionsFromEnv(io.env);
  const label = `mo-amqp dlq ${action}`;
  const open = await connectCli(options, io, label);
  if (typeof open === 'number') return open;
  let stopped = false;
  void io.stopped.then(() => (stopped = true));
  try {
    const channel = await quietChannel(open.connection);
    const depth = await depthOf(channel, names.dlq, open, io, label);
    if (depth === undefined) return 2;
    switch (action as Action) {
      case 'list':
        return await list(channel, names.dlq, depth, limit, () => stopped, io);
      case 'show':
        return await show(channel, names.dlq, depth, rest[0], () => stopped, io, label);
      case 'purge':
        return await purge(channel, names.dlq, depth, values.yes === true, io, label);
      case 'requeue':
        await closeQuietly(channel);
        return await requeueMessages(open.connection, {
          ...names,
          limit,
          messageId: values['message-id'],
          toQueue: values['to-queue'] === true,
          stopped: () => stopped,
          io,
          label,
        });
    }
  } catch (err) {
    const lost = await Promise.race([open.lost, Promise.resolve(undefined)]);
    io.err(`${label}: RabbitMQ at ${open.broker} failed: ${lost ?? open.redact(err)}`);
    return 1;
  } finally {
    await open.connection.close().catch(() => undefined);
  }
}

/** How many messages wait in `dlq`; undefined (said on stderr) when there is no such queue. */
export async function depthOf(
  channel: Channel,
  queue: string,
  open: CliBroker,
  io: CliIo,
  label: string,
): Promise<number | undefined> {
  try {
    return (await channel.checkQueue(queue)).messageCount;
  } catch (err) {
    if ((err as { code?: unknown }).code !== 404) throw err;
    io.err(`${label}: RabbitMQ at ${open.broker} has no queue "${queue}": ${open.redact(err)}`);
    return undefined;
  }
}

/**
 * Takes up to `most` messages without acknowledging them, handing each to
 * `visit` (with its 1-based index) until it returns false. The caller closes the
 * channel, which hands them all back in their order.
 */
async function peek(
  channel: Channel,
  queue: string,
  most: number,
  stopped: () => boolean,
  visit: (index: number, message: GetMessage) => boolean,
): Promise<void> {
  for (let index = 1; index <= most && !stopped(); index++) {
    const message = await channel.get(queue, { noAck: false });
    if (!message || !visit(index, message)) return;
  }
}

async function list(
  channel: Channel,
  dlq: string,
  depth: number,
  limit: number,
  stopped: () => boolean,
  io: CliIo,
): Promise<number> {
  const lines: string[] = [];
  await peek(
    channel,
    dlq,
    Math.min(depth, limit),
    stopped,
    (index, message) => lines.push(listLine(index, message)) > 0,
  );
  await channel.close(); // every message goes back, in its place
  io.out(`"${dlq}" holds ${depth} message(s)${lines.length < depth ? `; the first ${lines.length}:` : ':'}`);
  for (const line of lines) io.out(line);
  return 0;
}

async function show(
  channel: Channel,
  dlq: string,
  depth: number,
  which: string,
  stopped: () => boolean,
  io: CliIo,
  label: string,
): Promise<number> {
  const byIndex = /^\d+$/.test(which) ? Number(which) : undefined;
  let found: string | undefined;
  await peek(channel, dlq, byIndex ?? depth, stopped, (index, message) => {
    if (byIndex === index || (byIndex === undefined && message.properties.messageId === which)) {
      found = showJson(index, message);
    }
    return found === undefined;
  });
  await channel.close();
  if (found === undefined) {
    const what = byIndex === undefined ? `a message with message_id "${which}"` : `a message #${byIndex}`;
    io.err(`${label}: "${dlq}" holds ${depth} message(s), and not ${what}`);
    return 2;
  }
  io.out(found);
  return 0;
}

async function purge(
  channel: Channel,
  dlq: string,
  depth: number,
  yes: boolean,
  io: CliIo,
  label: string,
): Promise<number> {
  if (!yes) {
    io.err(`${label}: would delete the ${depth} message(s) in "${dlq}" for good; run again with --yes to do it`);
    return 2;
  }
  const { messageCount } = await channel.purgeQueue(dlq);
  io.out(`purged ${messageCount} message(s) from "${dlq}"`);
  return 0;
}
