import type { Channel, ChannelModel } from 'amqplib';
import { messageOf } from '../util/error-message';
import { atLeast, brokerVersionOf } from './broker-version';

/**
 * RabbitMQ 4.0 gives a quorum queue declared without `x-delivery-limit` a limit
 * of 20 and drops (without a dead-letter exchange) a message handed out more
 * often. A dead-letter queue is read by handing its messages out and taking them
 * back (`mo-amqp dlq list` and `show`, every operator's tool), so after twenty
 * looks its dead letters would be gone. From 4.0, -1 means no limit; on 3.x there
 * is no default limit, and -1 would drop a message at its first return.
 */
const UNLIMITED = -1;

export interface DeadLetterQueueNotice {
  warn(message: string): void;
}

/**
 * Declares a dead-letter queue: durable, classic or quorum, and a quorum one on
 * RabbitMQ 4.x without a delivery limit. One that exists from before (declared
 * without the argument, as this package did until 4.x) cannot be given it: the
 * broker refuses the declaration as inequivalent, closing the channel. So on
 * 4.x it is first tried on a channel of its own; refused so, the queue is taken
 * as it is and a warning says how to lift its limit (a policy).
 */
export async function assertDeadLetterQueue(
  channel: Channel,
  model: Pick<ChannelModel, 'createChannel'> | undefined,
  name: string,
  quorum: boolean,
  notice: DeadLetterQueueNotice,
): Promise<void> {
  if (!quorum) {
    await channel.assertQueue(name, { durable: true });
    return;
  }
  const typed = { 'x-queue-type': 'quorum' };
  const unlimited = { ...typed, 'x-delivery-limit': UNLIMITED };
  const version = brokerVersionOf(channel);
  if (!atLeast(version, 4)) {
    await channel.assertQueue(name, { durable: true, arguments: typed });
    return;
  }
  if (model && !(await takesArguments(model, name, unlimited))) {
    notice.warn(
      `Dead-letter queue "${name}" exists as a quorum queue without a delivery limit of its own, so RabbitMQ ` +
        `${version.text} drops a dead letter once it has been handed out 20 times (each "mo-amqp dlq list" or ` +
        `"show" hands every one out once). Lift the limit with a policy: ` +
        `rabbitmqctl set_policy --apply-to quorum_queues mo-amqp-dlq '\\.dlq$' '{"delivery-limit":-1}' ` +
        '(or delete the empty queue, and it is declared anew without one)',
    );
    await channel.assertQueue(name, { durable: true, arguments: typed });
    return;
  }
  await channel.assertQueue(name, { durable: true, arguments: unlimited });
}

/** Whether the broker takes the declaration on a channel of its own (closed after). */
async function takesArguments(
  model: Pick<ChannelModel, 'createChannel'>,
  name: string,
  args: Record<string, unknown>,
): Promise<boolean> {
  const probe = await model.createChannel();
  probe.on('error', () => undefined); // a refusal closes only the probe
  try {
    await probe.assertQueue(name, { durable: true, arguments: args });
    await probe.close();
    return true;
  } catch (err) {
    // Refused for another reason (permissions, type): the real declaration says so.
    return !/inequivalent arg 'x-delivery-limit'/.test(messageOf(err));
  }
}
