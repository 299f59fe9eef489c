import { type AmqpConnection, RabbitMQModule } from '@golevelup/nestjs-rabbitmq';
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import { settlesWithin } from '../util/settles-within';

/*
 * Every use of what @golevelup/nestjs-rabbitmq (9.0.x), amqp-connection-manager
 * (5.x) and amqplib do not offer as API is in this file, and each says what it
 * relies on and the versions it was checked against: golevelup 9.0.2,
 * amqp-connection-manager 5.0.0, amqplib 0.10.9 (what a plain install gets:
 * golevelup asks for ^0.10.9) and 2.3.1 (put in by an npm `overrides` entry,
 * docs/hardening.md).
 * test/e2e/amqp-internals.e2e-spec.ts runs each against the installed versions
 * on a real broker and fails when an upgrade breaks one; `internalsMissing`
 * says so at start-up too (a warning: each use has a fallback).
 */

const BATCHED = Symbol('mo-amqp:batched-writes');

/** golevelup's private `outstandingMessageProcessing`: the handler calls in progress (checked: 9.0.2). */
interface GolevelupInternals {
  outstandingMessageProcessing?: Set<Promise<unknown>>;
}

/** amqplib's ChannelModel keeps its Connection, which keeps the socket as `stream` (checked: 0.10.9, 2.3.1). */
interface ChannelModelInternals {
  connection?: { stream?: { destroy?: (err: Error) => void } };
}

/**
 * amqplib's Connection writes every frame to the socket through its Mux, one
 * `write` per message (checked: 0.10.9, 2.3.1; the Mux is the same code in both).
 */
interface MuxInternals {
  out?: { cork?: () => void; uncork?: () => void };
  _readIncoming?: () => void;
  [BATCHED]?: true;
}

/**
 * amqplib's ConfirmChannel keeps its confirm callbacks, in publish order, in
 * `unconfirmed` (checked: 0.10.9, 2.3.1).
 */
interface ConfirmChannelInternals {
  unconfirmed?: unknown[];
}

/**
 * Names the internals this installation lacks (empty when all are there), so
 * start-up can warn before a shutdown or an encoding error needs them.
 */
export function internalsMissing(amqpConnection: AmqpConnection): string[] {
  const missing: string[] = [];
  if (!((amqpConnection as unknown as GolevelupInternals).outstandingMessageProcessing instanceof Set)) {
    missing.push('@golevelup/nestjs-rabbitmq AmqpConnection.outstandingMessageProcessing (a Set)');
  }
  if (typeof amqpConnection.close !== 'function') missing.push('@golevelup/nestjs-rabbitmq AmqpConnection.close()');
  return missing;
}

/**
 * The golevelup handler calls in progress, so shutdown can wait for them after
 * cancelling the consumers. Relies on `outstandingMessageProcessing`, a private
 * Set of their promises (checked: golevelup 9.0.2); without it, shutdown does
 * not wait (golevelup's own close() waits later, after publishing has stopped).
 */
export function handlersInProgress(amqpConnection: AmqpConnection): Promise<unknown>[] {
  const inProgress = (amqpConnection as unknown as GolevelupInternals).outstandingMessageProcessing;
  return inProgress instanceof Set ? [...inProgress] : [];
}

/**
 * golevelup's close() waits for the broker's answers (consumer cancels, channel
 * and connection close) without a bound, so a broker that stopped answering
 * would hang `app.close()` for ever. Replaces `close` on this one instance
 * (golevelup's RabbitMQModule calls it at shutdown and offers no option for it):
 * past `ms` the connection manager stops reconnecting and the socket is cut
 * (checked: golevelup 9.0.2, amqp-connection-manager 5.0.0's `connection`).
 */
export function boundClose(amqpConnection: AmqpConnection, ms: number, onCut: (ms: number) => void): void {
  const close = amqpConnection.close.bind(amqpConnection);
  amqpConnection.close = async () => {
    if (await settlesWithin(close(), ms)) return;
    onCut(ms);
    const manager = amqpConnection.managedConnection;
    void manager.close().catch(() => undefined); // stops reconnecting at once; its answer never comes
    cutSocket(manager);
  };
}

/**
 * Destroys the socket of the manager's current connection, for a broker that
 * no longer answers. Relies on amqplib's ChannelModel `connection.stream`
 * (checked: 0.10.9, 2.3.1); returns false when it is not there. With an error:
 * amqplib notices a socket error at once, a plain close only at the next
 * missed heartbeat.
 */
export function cutSocket(manager: AmqpConnectionManager): boolean {
  const stream = (manager.connection as unknown as ChannelModelInternals | undefined)?.connection?.stream;
  if (typeof stream?.destroy !== 'function') return false;
  stream.destroy(new Error('cut: RabbitMQ did not answer'));
  return true;
}

/**
 * The number of confirm callbacks amqplib holds for the channel, taken just
 * before a publish so that `withdrawConfirm` can tell what the publish left
 * behind; undefined when amqplib keeps them in no `unconfirmed` array.
 */
export function confirmsHeld(channel: ConfirmChannel): number | undefined {
  const pending = (channel as unknown as ConfirmChannelInternals).unconfirmed;
  return Array.isArray(pending) ? pending.length : undefined;
}

/** What `withdrawConfirm` found: nothing left behind, a callback taken back, or the channel closed instead. */
export type ConfirmWithdrawal = 'none-left' | 'withdrawn' | 'channel-closed';

/**
 * After a publish that threw (a message amqplib could not encode), makes sure
 * no confirm callback of it is left on the channel, where every later confirm
 * would be paired with the message before its own. `heldBefore` is
 * `confirmsHeld(channel)` just before that publish.
 *
 * amqplib 0.10.x (checked: 0.10.9) queues the callback before it encodes the
 * message, so it is left as the last of `unconfirmed`: taken back here. It
 * may not be the caller's function (@opentelemetry/instrumentation-amqplib
 * passes amqplib a wrapper of it), but publishing is synchronous: the one
 * callback more than `heldBefore` is this publish's. From 1.0.4 on (checked:
 * 2.3.1; amqplib's fix for its issue #842) amqplib queues the callback only
 * once the message was written: nothing is left, and nothing is done. Anything
 * else (no `unconfirmed` array, or another count) is bookkeeping this does not
 * know: the channel is closed instead (its unconfirmed messages are then
 * written again on the next one).
 */
export function withdrawConfirm(channel: ConfirmChannel, heldBefore: number | undefined): ConfirmWithdrawal {
  const pending = (channel as unknown as ConfirmChannelInternals).unconfirmed;
  if (Array.isArray(pending) && heldBefore !== undefined) {
    if (pending.length === heldBefore) return 'none-left';
    if (pending.length === heldBefore + 1) {
      pending.pop();
      return 'withdrawn';
    }
  }
  channel.close().catch(() => undefined);
  return 'channel-closed';
}

/**
 * amqplib's Mux writes each message to the socket on its own (`_readIncoming`
 * loops over the frames waiting and calls `out.write` for each): one system call
 * per message. Corks the socket for the length of that loop, so what one tick
 * published goes out in one `writev`. Same bytes, same order. Relies on the
 * Connection's `muxer` with `out` (the socket) and `_readIncoming` (checked:
 * 0.10.9, 2.3.1); returns false, changing nothing, when they are not there.
 */
export function batchSocketWrites(manager: AmqpConnectionManager): boolean {
  const connection = (manager.connection as unknown as { connection?: { muxer?: MuxInternals } } | undefined)
    ?.connection;
  const mux = connection?.muxer;
  const out = mux?.out;
  const readIncoming = mux?._readIncoming;
  if (
    !mux ||
    typeof out?.cork !== 'function' ||
    typeof out.uncork !== 'function' ||
    typeof readIncoming !== 'function'
  ) {
    return false;
  }
  if (mux[BATCHED]) return true;
  mux[BATCHED] = true;
  mux._readIncoming = function (this: MuxInternals) {
    out.cork?.();
    try {
      readIncoming.call(this);
    } finally {
      out.uncork?.();
    }
  };
  return true;
}

/**
 * Cancels every golevelup consumer (no new deliveries) and waits for the
 * handlers in progress, whose messages are then acked or requeued as usual.
 * golevelup's own close() does this too, but only after publishing has stopped.
 * Public API only (`consumerTags`, `cancelConsumer`) besides `handlersInProgress`.
 */
export async function stopGolevelupConsumers(amqpConnection: AmqpConnection): Promise<void> {
  for (const tag of amqpConnection.consumerTags) await amqpConnection.cancelConsumer(tag).catch(() => undefined);
  await Promise.allSettled(handlersInProgress(amqpConnection));
}

/**
 * golevelup's RabbitMQModule registers handlers in the first application of a process only: a
 * static `bootstrapped` flag, set at its bootstrap and cleared at its shutdown (checked: 9.0.2).
 * A second application started beside the first (a worker, a test) would then not consume at
 * all. Cleared here just before this application's golevelup bootstrap runs (the subscriber
 * explorer's bootstrap hook comes first), so each application registers its own handlers.
 * Returns false when the flag is not there (a golevelup without it needs nothing).
 */
export function letGolevelupRegisterHandlers(): boolean {
  const module = RabbitMQModule as unknown as { bootstrapped?: unknown };
  if (typeof module.bootstrapped !== 'boolean') return false;
  module.bootstrapped = false;
  return true;
}

/**
 * golevelup keeps the connections of every application in the process in one static map, by
 * connection name, and its shutdown hook closes (and forgets) all the map holds (checked: 9.0.2).
 * A second application's connection replaces the first's there under the same name: closing the
 * first would close the second's and leave its own open. Put back just before this
 * application's shutdown, so it closes its own; the other's returns at its own shutdown.
 */
export function reclaimGolevelupConnection(amqpConnection: AmqpConnection): boolean {
  const manager = (RabbitMQModule as unknown as { connectionManager?: { connections?: unknown } }).connectionManager;
  if (!(manager?.connections instanceof Map)) return false;
  manager.connections.set(amqpConnection.configuration.name, amqpConnection);
  return true;
}

/** The golevelup calls whose promise resolves only once their set-up has run on an open channel. */
const CONSUMER_CALLS = ['createSubscriber', 'createBatchSubscriber', 'createRpc'] as const;

/**
 * golevelup's bootstrap awaits each handler's first set-up: `createSubscriber`,
 * `createBatchSubscriber` and `createRpc` resolve only once it has run on an open
 * channel (checked: 9.0.2), so an app started without the broker would hang in
 * `init()` until it answers. Until `gate` resolves, these calls on this instance
 * resolve at once (`consumerTag` '') and are made for real once it has: after this
 * package's exchange and queues exist, so no consumer binds to an exchange not yet
 * declared. Returns false when one of them is not there (then nothing is changed).
 */
export function deferGolevelupConsumers(
  amqpConnection: AmqpConnection,
  gate: Promise<unknown>,
  onError: (err: unknown) => void = () => undefined,
): boolean {
  type Call = (...args: unknown[]) => Promise<unknown>;
  const calls = amqpConnection as unknown as Record<string, Call>;
  const originals = CONSUMER_CALLS.map((name) => [name, calls[name], Object.hasOwn(calls, name)] as const);
  if (originals.some(([, original]) => typeof original !== 'function')) return false;
  const restore = () => {
    for (const [name, original, own] of originals) {
      if (own) calls[name] = original;
      else delete calls[name]; // the prototype's again
    }
  };
  void gate.then(restore, restore);
  for (const [name, original] of originals) {
    calls[name] = (...args) => {
      // A handler that cannot attach then is said, not swallowed.
      void gate.then(
        () => original.apply(amqpConnection, args).catch(onError),
        () => undefined,
      );
      return Promise.resolve({ consumerTag: '' });
    };
  }
  return true;
}
