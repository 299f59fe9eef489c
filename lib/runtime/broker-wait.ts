import type { AmqpConnection } from '@golevelup/nestjs-rabbitmq';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
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
  /** Resolves once the publisher's channel and golevelup's own are set up. */
  readonly done: Promise<void>;
  /** The publisher's channel set-up failed (the exchange refused): ends the wait, explained. */
  publisherFailed(err: unknown): void;
  /** Start-up failed elsewhere: ends the wait with `err`. */
  cancel(err: Error): void;
}

/**
 * Waits for the broker at start-up, so a wrong address stops the app instead of
 * every publish. What waiting cannot change (a refused login, a vhost, TLS, an
 * exchange the broker refuses) ends it at once, saying why; otherwise it ends
 * after `connectTimeoutMs` with the last error.
 */
export function waitForBroker(
  amqpConnection: AmqpConnection,
  publisher: ConfirmPublisher,
  { options, broker, redact }: BrokerContext,
): BrokerWait {
  const connection = amqpConnection.managedConnection;
  let finish: (err?: Error) => void = () => undefined;
  let lastError = 'no answer yet';
  const onConnectFailed = ({ err, url }: { err?: Error; url?: unknown }) => {
    lastError = redact(err);
    // TLS first: a refused certificate login is not a wrong password.
    const tls = explainTlsFailure(err, options);
    if (tls) return finish(new MoAmqpConnectionError(`RabbitMQ at ${broker}: ${redact(tls)}`, broker));
    const refusal = explainConnectRefusal(lastError, typeof url === 'string' ? url : '');
    if (refusal) finish(new MoAmqpConnectionError(`${refusal} (${lastError})`, broker));
  };
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        finish(
          new MoAmqpConnectionError(
            `Could not connect to RabbitMQ at ${broker} within ${options.connectTimeoutMs} ms (last error: ${lastError}). ` +
              'Start the broker, or set AMQP__URL (or AMQP__HOST/AMQP__PORT) to where it runs; ENABLE_AMQP=false runs without one.',
            broker,
          ),
        ),
      options.connectTimeoutMs,
    );
    finish = (err) => {
      finish = () => undefined;
      clearTimeout(timer);
      connection.removeListener('connectFailed', onConnectFailed);
      if (err) reject(err);
      else resolve();
    };
  });
  connection.on('connectFailed', onConnectFailed);
  Promise.all([publisher.whenReady(), amqpConnection.managedChannel.waitForConnect()]).then(
    () => finish(),
    (err: Error) => finish(err),
  );
  return {
    done,
    publisherFailed: (err) => finish(exchangeRefusal(err, { options, broker, redact })),
    cancel: (err) => finish(err),
  };
}

function exchangeRefusal(err: unknown, { options, broker, redact }: BrokerContext): MoAmqpConnectionError {
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
