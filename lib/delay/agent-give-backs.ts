import type { Logger } from '@nestjs/common';
import { GiveBacks, MAX_GIVE_BACKS, MessageKey, giveBackPauseMs } from '../runtime/give-backs';
import { messageOf } from '../util/error-message';
import { Delivery } from './agent-channel';

/**
 * What the agent does with a message it could not pass on (its forward, ladder or
 * dead-letter copy not published): back to its queue after a growing pause, up
 * to `MAX_GIVE_BACKS` times; then, in quorum mode, rejected, and the queue's
 * dead-letter exchange takes it to the agent's .dlq. Classic queues here have no
 * dead-letter exchange (their arguments cannot change under a running
 * deployment), so there a rejection would lose it: it goes on going back, at
 * the longest pause, and each time an error says so.
 */
export class AgentGiveBacks {
  private readonly counted = new GiveBacks();

  constructor(
    private readonly logger: Pick<Logger, 'error'>,
    private readonly quorum: boolean,
    private readonly deadLetterQueue: string,
    private readonly onRejected: () => void,
  ) {}

  giveBack(delivery: Delivery, err: unknown, message: MessageKey): void {
    const giveBack = this.counted.another(message);
    const what = `Delay agent could not pass message_id ${message.properties.messageId} on (${messageOf(err)})`;
    if (giveBack === undefined && this.quorum) {
      this.logger.error(
        `${what} for the ${MAX_GIVE_BACKS + 1}th time; rejected instead: RabbitMQ dead-letters it to ` +
          `"${this.deadLetterQueue}" (x-death reason "rejected")`,
      );
      this.onRejected();
      delivery.reject();
      return;
    }
    const pause = giveBackPauseMs(giveBack ?? MAX_GIVE_BACKS);
    this.logger.error(
      `${what}; it goes back to its queue in ${pause} ms ` +
        (giveBack === undefined
          ? `(past ${MAX_GIVE_BACKS} times: classic queues have no dead-letter exchange here, so it is tried until it passes)`
          : `(${giveBack} of ${MAX_GIVE_BACKS})`),
    );
    setTimeout(() => delivery.requeue(), pause).unref();
  }

  /** Passed on: its count, if any, is dropped. */
  done(message: MessageKey): void {
    this.counted.done(message);
  }
}
