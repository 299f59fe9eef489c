import { Nack } from '@golevelup/nestjs-rabbitmq';
import type { Logger } from '@nestjs/common';
import type { ConsumeMessage, Options } from 'amqplib';
import { MoEventParseError } from '../errors/mo-event-parse.error';
import {
  MO_HEADER_ATTEMPT,
  MO_HEADER_EXCHANGE,
  MO_HEADER_QUEUE,
  MO_HEADER_REASON,
  MO_HEADER_ROUTING_KEY,
} from '../mo-amqp.constants';
import { publishPropertiesOf } from '../util/publish-properties';
import { GiveBacks, MAX_GIVE_BACKS, giveBackPauseMs } from '../runtime/give-backs';
import { retryDelayOf } from '../events/retry-policy';
import { Received, processing } from '../telemetry/tracing';

/** What a running module gives a subscription. */
export interface ConsumerBinding {
  readonly label: string;
  readonly queue: string;
  readonly deadLetterQueue: string;
  /** Where a failed message waits for its next try (`retryQueueOf(queue)`). */
  readonly retryQueue: string;
  readonly retries: number;
  /** The first wait before a try again; 0: at once, on the queue itself. */
  readonly retryDelayMs: number;
  /** Reads and validates a delivery (throws `MoEventParseError`): the legacy or the subsystem format. */
  read(content: Buffer, message: ConsumeMessage): ReadDelivery;
  readonly logger: Pick<Logger, 'warn' | 'error'>;
  /** How often each message went back to the queue because a copy could not be published. */
  readonly giveBacks: GiveBacks;
  forward(exchange: string, routingKey: string, content: Buffer, properties: Options.Publish): Promise<void>;
  count(what: 'retried' | 'deadLettered'): void;
}

/** A delivery read: what the handler is given, and which attempt at handling it this is. */
export interface ReadDelivery {
  readonly event: { readonly routingKey: string };
  readonly attempt: number;
}

/** One delivery's method and its application's binding (undefined: not started, or shut down). */
export interface ConsumerState {
  readonly method: string | symbol;
  readonly binding: ConsumerBinding | undefined;
}

/** Each consuming instance's bindings, by method (keyed by the instance: an application's own, and frozen ones fine). */
const consumerBindings = new WeakMap<object, Map<string | symbol, ConsumerBinding>>();

export function consumerBindingOf(instance: unknown, method: string | symbol): ConsumerBinding | undefined {
  if (instance === null || typeof instance !== 'object') return undefined;
  return consumerBindings.get(instance)?.get(method);
}

/** Gives `instance` `binding` for `method`; `undefined` takes it off. */
export function setConsumerBinding(instance: object, method: string | symbol, binding?: ConsumerBinding): void {
  let bound = consumerBindings.get(instance);
  if (!bound) {
    if (!binding) return;
    consumerBindings.set(instance, (bound = new Map()));
  }
  if (binding) bound.set(method, binding);
  else bound.delete(method);
}

/**
 * Handles one delivery for golevelup: returns nothing to ack it (handled, retried
 * or dead-lettered, each copy confirmed first), or, when a copy could not be
 * published, a requeueing `Nack` after a pause; after `MAX_GIVE_BACKS` of those,
 * a `Nack` without requeue: the queue's own dead-letter exchange takes it to the
 * .dlq (x-death reason "rejected"). Never throws.
 */
export async function consumeDelivery(
  state: ConsumerState,
  instance: object,
  content: Buffer,
  message: ConsumeMessage,
): Promise<Nack | undefined> {
  const binding = state.binding;
  if (!binding) return new Nack(true); // shutting down: leave it to the next consumer
  try {
    await settle(binding, state, instance, content, message);
    binding.giveBacks.done(message);
    return undefined;
  } catch (err) {
    const giveBack = binding.giveBacks.another(message);
    const what = `${binding.label}: could not retry or dead-letter message_id ${message.properties.messageId} from "${binding.queue}" (${reasonOf(err)})`;
    if (giveBack === undefined) {
      binding.count('deadLettered');
      binding.logger.error(
        `${what} for the ${MAX_GIVE_BACKS + 1}th time; rejected instead: RabbitMQ dead-letters it to ` +
          `"${binding.deadLetterQueue}" (x-death reason "rejected")`,
      );
      return new Nack(false);
    }
    const pause = giveBackPauseMs(giveBack);
    binding.logger.error(`${what}; it goes back to the queue in ${pause} ms (${giveBack} of ${MAX_GIVE_BACKS})`);
    await new Promise((resolve) => setTimeout(resolve, pause));
    return new Nack(true);
  }
}

/** Handled, retried or dead-lettered: resolves once done (each copy confirmed); rejects when a copy failed. */
async function settle(
  binding: ConsumerBinding,
  state: ConsumerState,
  instance: object,
  content: Buffer,
  message: ConsumeMessage,
): Promise<void> {
  let delivery: ReadDelivery;
  try {
    delivery = binding.read(content, message);
  } catch (err) {
    return await deadLetter(binding, message, reasonOf(err));
  }
  const { event, attempt } = delivery;
  try {
    const handler = (instance as Record<string | symbol, (...args: unknown[]) => unknown>)[state.method];
    // In its consumer span, whose parent is the producer's span (from the message's trace headers).
    await processing(binding.queue, receivedOf(message), async () => {
      await handler.call(instance, event, message);
    });
  } catch (err) {
    if (attempt <= binding.retries) return await retry(binding, event, message, attempt, err);
    await deadLetter(
      binding,
      message,
      `the handler failed ${attempt} times; last error: ${reasonOf(err)}`,
      event.routingKey,
    );
  }
}

function receivedOf({ fields, properties, content }: ConsumeMessage): Received {
  return {
    exchange: fields.exchange,
    routingKey: fields.routingKey,
    messageId: properties.messageId,
    deliveryTag: fields.deliveryTag,
    headers: properties.headers,
    bytes: content.length,
  };
}

function reasonOf(err: unknown): string {
  if (err instanceof MoEventParseError) return err.message;
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * The headers a copy needs to be read as the original: its routing key and
 * exchange. `routingKey` is the one the delivery was read under; for a
 * delivery that could not be read, the one it was delivered with.
 */
function originHeaders(message: ConsumeMessage, routingKey = message.fields.routingKey): Record<string, unknown> {
  const { [MO_HEADER_ATTEMPT]: attempt, ...headers } = message.properties.headers ?? {};
  const ours = message.fields.exchange === '';
  return {
    ...headers,
    // A sender's own attempt count is not carried on: it was not believed either.
    ...(ours && attempt !== undefined && { [MO_HEADER_ATTEMPT]: attempt }),
    [MO_HEADER_ROUTING_KEY]: ours ? (headers[MO_HEADER_ROUTING_KEY] ?? routingKey) : routingKey,
    [MO_HEADER_EXCHANGE]: ours ? (headers[MO_HEADER_EXCHANGE] ?? message.fields.exchange) : message.fields.exchange,
  };
}

async function retry(
  binding: ConsumerBinding,
  event: ReadDelivery['event'],
  message: ConsumeMessage,
  attempt: number,
  err: unknown,
): Promise<void> {
  const headers: Record<string, unknown> = {
    ...originHeaders(message, event.routingKey),
    [MO_HEADER_ATTEMPT]: attempt + 1,
  };
  const properties = publishPropertiesOf(message.properties, headers);
  const delay = retryDelayOf(binding.retryDelayMs, attempt);
  if (delay === 0) {
    await binding.forward('', binding.queue, message.content, properties);
  } else {
    // The broker holds it: expired in the retry queue, it is dead-lettered back to this queue.
    await binding.forward('', binding.retryQueue, message.content, { ...properties, expiration: String(delay) });
  }
  binding.count('retried');
  binding.logger.warn(
    `${binding.label} failed on ${headers[MO_HEADER_ROUTING_KEY]} (message_id ${message.properties.messageId}, ` +
      `attempt ${attempt} of ${binding.retries + 1}): ${reasonOf(err)}; it will be tried again` +
      (delay > 0 ? ` in ${delay} ms` : ''),
  );
}

async function deadLetter(
  binding: ConsumerBinding,
  message: ConsumeMessage,
  reason: string,
  routingKey?: string,
): Promise<void> {
  const headers = {
    ...originHeaders(message, routingKey),
    [MO_HEADER_REASON]: reason,
    [MO_HEADER_QUEUE]: binding.queue,
  };
  await binding.forward('', binding.deadLetterQueue, message.content, publishPropertiesOf(message.properties, headers));
  binding.count('deadLettered');
  binding.logger.warn(
    `${binding.label}: message_id ${message.properties.messageId} from "${binding.queue}" went to ` +
      `"${binding.deadLetterQueue}": ${reason}`,
  );
}
