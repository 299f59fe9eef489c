import type { AmqpConnection } from '@golevelup/nestjs-rabbitmq';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { brokerUrlsOf } from '../config/mo-amqp-options.schema';
import { explainTlsFailure } from '../config/tls';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { ConfirmPublisher } from './confirm-publisher';
import { explainConnectRefusal } from './connect-failure';
import { explainExchangeRefusal } from './exchanges';

/** What start-up and failure texts name: the settings, the broker and a redactor (both mask passwords). */
export interface BrokerContext {
  readonly options: ResolvedMoAmqpOptions;
  readonly broker: string;
  readonly redact: (err: unknown) => string;
}

/** The start-up wait for the broker, with the ways to end it early. */
export interface BrokerWait {
  /**
   * Resolves `connected` once the publisher's channel and golevelup's own are set up;
   * `unreachable` (only when asked to give up early) once every URL has been tried
   * once, or the connect timeout passed, without a refusal.
   */
  readonly done: Promise<'connected' | 'unreachable'>;
  /** The publisher's channel set-up failed (the exchange refused): ends the wait, explained. */
  publisherFailed(err: unknown): void;
  /** Start-up failed elsewhere: ends the wait with `err`. */
  cancel(err: Error): void;
}

/**
 * Why a broker that answered will not let this client in (TLS, login, vhost), as
 * start-up says it; undefined for a failure that may pass (no broker yet, a network error).
 */
export function connectRefusal(
  err: unknown,
  url: unknown,
  { options, broker, redact }: BrokerContext,
): string | undefined {
  // TLS first: a refused certificate login is not a wrong password.
  const tls = explainTlsFailure(err, options);
  if (tls) return `RabbitMQ at ${broker}: ${redact(tls)}`;
  const message = redact(err);
  const refusal = explainConnectRefusal(message, typeof url === 'string' ? url : '');
  return refusal && `${refusal} (${message})`;
}

/**
 * Waits for the broker at start-up, so a wrong address stops the app instead of
 * every publish. What waiting cannot change (a refused login, a vhost, TLS, an
 * exchange the broker refuses) ends it at once, saying why; otherwise it ends
 * after `connectTimeoutMs` with the last error. With `giveUpEarly` (a start
 * without the broker), a broker merely unreachable ends it as `unreachable`
 * after one try of each URL instead.
 */
export function waitForBroker(
  amqpConnection: AmqpConnection,
  publisher: ConfirmPublisher,
  context: BrokerContext,
  giveUpEarly = false,
): BrokerWait {
  const { options, broker, redact } = context;
  const connection = amqpConnection.managedConnection;
  const urls = brokerUrlsOf(options).length;
  let finish: (outcome: Error | 'connected' | 'unreachable') => void = () => undefined;
  let lastError = 'no answer yet';
  let failures = 0;
  const onConnectFailed = ({ err, url }: { err?: Error; url?: unknown }) => {
    lastError = redact(err);
    const refusal = connectRefusal(err, url, context);
    if (refusal) return finish(new MoAmqpConnectionError(refusal, broker));
    // Each URL once: a cluster whose first node is down still starts connected.
    if (giveUpEarly && ++failures >= urls) finish('unreachable');
  };
  const done = new Promise<'connected' | 'unreachable'>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        finish(
          giveUpEarly
            ? 'unreachable'
            : new MoAmqpConnectionError(
                `Could not connect to RabbitMQ at ${broker} within ${options.connectTimeoutMs} ms (last error: ${lastError}). ` +
                  'Start the broker, or set AMQP__URL (or AMQP__HOST/AMQP__PORT) to where it runs; ENABLE_AMQP=false runs without one.',
                broker,
              ),
        ),
      options.connectTimeoutMs,
    );
    finish = (outcome) => {
      finish = () => undefined;
      clearTimeout(timer);
      connection.removeListener('connectFailed', onConnectFailed);
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
  });
  connection.on('connectFailed', onConnectFailed);
  Promise.all([publisher.whenReady(), amqpConnection.managedChannel.waitForConnect()]).then(
    () => finish('connected'),
    (err: Error) => finish(err),
  );
  return {
    done,
    publisherFailed: (err) => finish(exchangeRefusal(err, { options, broker, redact })),
    cancel: (err) => finish(err),
  };
}

/** The explained refusal of the publisher's exchange set-up. */
export function exchangeRefusal(err: unknown, { options, broker, redact }: BrokerContext): MoAmqpConnectionError {
  const { exchange, exchangeDurable, declareExchanges } = options;
  const explained = explainExchangeRefusal(err, [exchange], options);
  const asked = declareExchanges
    ? `to declare exchange "${exchange}" as a ${exchangeDurable ? 'durable' : 'non-durable'} topic exchange`
    : `the check that exchange "${exchange}" exists`;
  return new MoAmqpConnectionError(
    explained ? `RabbitMQ at ${broker}: ${explained}` : `RabbitMQ at ${broker} refused ${asked}: ${redact(err)}`,
    broker,
  );
}
