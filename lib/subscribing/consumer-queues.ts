import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { DeadLetterQueueNotice, assertDeadLetterQueue } from '../runtime/dead-letter-queue';
import { setUpExchange } from '../runtime/exchanges';
import { resolveRetryPolicy } from '../events/retry-policy';
import { MoEventSubscription, deadLetterQueueOf, queueArguments, retryQueueOf } from './subscriptions';

/**
 * Each consumer's queue with its dead-letter queue and, when it retries after a
 * wait, its retry queue; and the delayed exchange when a consumer binds to it.
 * Runs again on every new channel (after a reconnect).
 */
export async function declareConsumerQueues(
  channel: ConfirmChannel,
  subscriptions: readonly MoEventSubscription[],
  amqp: ResolvedMoAmqpOptions,
  /** The connection, for a dead-letter queue's trial declaration (assertDeadLetterQueue). */
  model: ChannelModel | undefined,
  notice: DeadLetterQueueNotice,
): Promise<void> {
  // A refused declaration then closes this channel only, not the connection the publisher shares.
  channel.on('error', () => undefined);
  // The delayed exchange is declared only where something uses it: here, and by the agent.
  if (subscriptions.some((s) => s.format === 'event' && s.options.delayed && !s.options.exchange)) {
    await setUpExchange(channel, amqp.delayedExchange, amqp);
  }
  for (const { options } of subscriptions) {
    const quorum = options.queueType === 'quorum' ? { 'x-queue-type': 'quorum' } : {};
    await assertDeadLetterQueue(
      channel,
      model,
      deadLetterQueueOf(options.queue),
      options.queueType === 'quorum',
      notice,
    );
    if (resolveRetryPolicy(options).usesRetryQueue) {
      // No consumer: each message expires after its own wait and goes back to the queue.
      await channel.assertQueue(retryQueueOf(options.queue), {
        durable: true,
        arguments: {
          ...quorum,
          ...(options.queueType === 'quorum' && {
            'x-dead-letter-strategy': 'at-least-once',
            'x-overflow': 'reject-publish',
          }),
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': options.queue,
        },
      });
    }
    await channel.assertQueue(options.queue, {
      durable: true,
      arguments: queueArguments(options.queue, options.queueType),
    });
  }
}
