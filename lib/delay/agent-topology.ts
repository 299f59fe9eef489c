import type { Channel, ChannelModel } from 'amqplib';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { brokerUrlsOf } from '../config/mo-amqp-options.schema';
import { brokerVersionOf, classicOnClusterWarning } from '../runtime/broker-version';
import { DeadLetterQueueNotice, assertDeadLetterQueue } from '../runtime/dead-letter-queue';
import { explainExchangeRefusal, setUpExchange } from '../runtime/exchanges';
import { MO_SERVICES } from '../events/vocabulary';
import { messageOf } from '../util/error-message';
import { describeValue } from '../util/describe-value';
import { DelayTopology, HOLD_SLOTS, LEVELS, routerBindings } from './delay-ladder';
import { ResolvedMoDelayAgentOptions } from './mo-delay-agent.options';

/**
 * Quorum mode: how often the broker may hand out one message of the incoming or
 * due queue before dead-lettering it. Higher than a consumer's 10: each agent
 * restart hands back every message it held, and a good message must survive many.
 */
export const AGENT_DELIVERY_LIMIT = 20;

/**
 * Everything the agent consumes from and publishes to: the ladder (LEVELS wait
 * queues with fixed TTLs, a headers router after each, and the entry router),
 * the incoming, due and dead-letter queues, both events exchanges, and the
 * incoming queue's binding to every event.
 */
export async function declareAgentTopology(
  channel: Channel,
  t: DelayTopology,
  queueType: ResolvedMoDelayAgentOptions['queueType'],
  amqp: ResolvedMoAmqpOptions,
  /** The connection, for the dead-letter queue's trial declaration (assertDeadLetterQueue). */
  model: ChannelModel | undefined,
  notice: DeadLetterQueueNotice,
): Promise<void> {
  const quorum = queueType === 'quorum';
  const typed = quorum ? { 'x-queue-type': 'quorum' } : {};
  // Along the ladder a quorum queue must dead-letter at least once, not at most once.
  const ladderSafety = quorum ? { 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' } : {};
  // A message the broker has handed out AGENT_DELIVERY_LIMIT times (agents dying on it)
  // goes to the dead-letter queue instead of round again.
  const taken = quorum
    ? {
        ...typed,
        'x-delivery-limit': AGENT_DELIVERY_LIMIT,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': t.deadLetter,
      }
    : {};
  await assertDeadLetterQueue(channel, model, t.deadLetter, quorum, notice);
  await channel.assertQueue(t.incoming, { durable: true, arguments: taken });
  await channel.assertQueue(t.due, { durable: true, arguments: taken });
  for (let slot = 0; slot < HOLD_SLOTS; slot++) {
    await channel.assertQueue(t.holdQueue(slot), { durable: true, arguments: taken });
  }
  // This agent puts a ladder copy straight into its first rung; the entry router stays for agents of
  // earlier versions, which publish through it, sharing the ladder during an upgrade.
  await channel.assertExchange(t.entryRouter, 'headers', { durable: true });
  for (let level = 0; level < LEVELS; level++) {
    await channel.assertExchange(t.router(level), 'headers', { durable: true });
    await channel.assertQueue(t.waitQueue(level), {
      durable: true,
      arguments: {
        ...typed,
        ...ladderSafety,
        'x-message-ttl': 2 ** level * 1000,
        'x-dead-letter-exchange': t.router(level),
      },
    });
  }
  const bind = async (router: string, from: number) => {
    for (const { to, args } of routerBindings(from)) {
      await channel.bindQueue(to === 'due' ? t.due : t.waitQueue(to), router, '', args);
    }
  };
  await bind(t.entryRouter, LEVELS);
  for (let level = 0; level < LEVELS; level++) await bind(t.router(level), level);
  await setUpExchange(channel, amqp.exchange, amqp);
  await setUpExchange(channel, amqp.delayedExchange, amqp);
  for (const key of AGENT_BINDINGS) await channel.bindQueue(t.incoming, amqp.exchange, key);
  await dropFormerBinding(model, t, amqp, notice);
}

/**
 * Takes off the `#` binding earlier agents made, which took OS2mo's one-word
 * AMQP-subsystem messages to the DLQ (unbinding is idempotent). On a channel of
 * its own: a refusal (say, topic permissions that allow only MO keys) closes
 * that one only and is a warning, not a failed start.
 */
async function dropFormerBinding(
  model: ChannelModel | undefined,
  t: DelayTopology,
  amqp: ResolvedMoAmqpOptions,
  notice: DeadLetterQueueNotice,
): Promise<void> {
  if (!model) return;
  let side: Channel | undefined;
  try {
    side = await model.createChannel();
    side.on('error', () => undefined);
    await side.unbindQueue(t.incoming, amqp.exchange, '#');
  } catch (err) {
    notice.warn(
      `The delay agent could not remove the "#" binding of "${t.incoming}" to "${amqp.exchange}" that earlier ` +
        `versions made (${messageOf(err)}): while it stays, every message of the exchange, OS2mo's one-word ` +
        `AMQP-subsystem messages too, reaches the agent and its DLQ; remove it in the management UI (the queue's ` +
        'bindings) as a user who may, and stop agents of earlier versions, which bind it again',
    );
  } finally {
    await side?.close().catch(() => undefined);
  }
}

/**
 * What the agent takes: three-word keys of each MO service, the only messages it
 * delays. OS2mo's AMQP-subsystem messages (one word, `engagement`) and foreign
 * keys are never routed to it, so they are neither delayed nor dead-lettered.
 */
export const AGENT_BINDINGS = MO_SERVICES.map((service) => `${service}.*.*`);

/** At start (a failed start closes the connection): the events exchanges must not be the agent's own routers. */
export function checkPrefix(t: DelayTopology, prefix: string, eventExchanges: readonly string[]): void {
  const routers = new Set([t.entryRouter, ...Array.from({ length: LEVELS }, (_, level) => t.router(level))]);
  const clash = eventExchanges.find((name) => routers.has(name));
  if (clash === undefined) return;
  throw new MoAmqpConfigError([
    {
      name: 'AMQP__DELAY_PREFIX (prefix)',
      received: describeValue(prefix),
      allowed:
        `a prefix under which no events exchange is named: the agent routes through its own exchanges ` +
        `"${t.entryRouter}" and "${t.router(0)}"-"${t.router(LEVELS - 1)}", and "${clash}" is AMQP__EXCHANGE or AMQP__DELAYED_EXCHANGE`,
    },
  ]);
}

/** The start-up error for a refused set-up: what the refusal of an events exchange means, or the broker's words. */
export function topologyRefused(err: unknown, amqp: ResolvedMoAmqpOptions): MoAmqpConnectionError {
  const explained = explainExchangeRefusal(err, [amqp.exchange, amqp.delayedExchange], amqp);
  return new MoAmqpConnectionError(
    explained
      ? `The delay agent could not set up its exchanges: ${explained}`
      : `The delay agent could not declare its queues: ${messageOf(err)}`,
    'RabbitMQ',
  );
}

/** Said once at start: the agent's classic queues on a RabbitMQ 4.x cluster (see classicOnClusterWarning). */
export function classicAgentWarning(
  model: ChannelModel | undefined,
  queueType: ResolvedMoDelayAgentOptions['queueType'],
  amqp: ResolvedMoAmqpOptions,
  t: DelayTopology,
): string | undefined {
  if (queueType === 'quorum' || !model) return undefined;
  const queues = `The delay agent's queues ("${t.incoming}", its ladder, hold and due queues)`;
  return classicOnClusterWarning(
    brokerVersionOf(model),
    brokerUrlsOf(amqp).length,
    queues,
    'AMQP__DELAY_QUEUE_TYPE=quorum',
  );
}
