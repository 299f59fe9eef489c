import * as amqp from 'amqplib';
import type { Options } from 'amqplib';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { brokerUrlsOf } from '../config/mo-amqp-options.schema';
import { errorRedactor, redactUrl } from '../config/redact';
import { explainTlsFailure, tlsConnectionOptions, tlsSecrets } from '../config/tls';
import { confirmsHeld, withdrawConfirm } from '../runtime/amqp-internals';
import { messageOf } from '../util/error-message';
import { CliIo } from './cli-io';

/** A command's open connection: where to (password masked), and how its errors are told. */
export interface CliBroker {
  readonly connection: amqp.ChannelModel;
  /** The broker's URL, its password masked. */
  readonly broker: string;
  /** An error's text with every password masked. */
  readonly redact: (err: unknown) => string;
  /** Resolves with why, should the connection be lost. */
  readonly lost: Promise<string>;
}

/**
 * Connects as the library does (a cluster's URLs in turn, the same TLS files and
 * login), or says on stderr why not and resolves with exit code 1. A bad TLS
 * file throws `MoAmqpConfigError` (exit 2).
 */
export async function connectCli(
  options: ResolvedMoAmqpOptions,
  io: CliIo,
  label: string,
): Promise<CliBroker | number> {
  const urls = brokerUrlsOf(options);
  const redact = errorRedactor(urls, tlsSecrets(options));
  const socketOptions = {
    timeout: options.connectTimeoutMs,
    // One message at a time waits for each answer: without this, Nagle and delayed ACKs add ~40 ms to each.
    noDelay: true,
    ...tlsConnectionOptions(options, (warning) => io.err(`${label}: warning: ${warning}`)),
  };
  let lastError: unknown;
  for (const url of urls) {
    try {
      const connection = await amqp.connect(url, socketOptions);
      const lost = new Promise<string>((resolve) => {
        connection.on('error', (err: unknown) => resolve(redact(err)));
        connection.on('close', () => resolve('the connection closed'));
      });
      return { connection, broker: redactUrl(url), redact, lost };
    } catch (err) {
      lastError = err;
    }
  }
  const why = explainTlsFailure(lastError, options) ?? redact(lastError);
  io.err(`${label}: could not connect to RabbitMQ at ${urls.map(redactUrl).join(', ')}: ${why}`);
  return 1;
}

/** A channel whose refusals (which close it) are reported by the refused call, not as an unhandled error. */
export async function quietChannel(connection: amqp.ChannelModel): Promise<amqp.Channel> {
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  return channel;
}

/** A confirm channel, likewise quiet. */
export async function quietConfirmChannel(connection: amqp.ChannelModel): Promise<amqp.ConfirmChannel> {
  const channel = await connection.createConfirmChannel();
  channel.on('error', () => undefined);
  return channel;
}

/** Closes a channel, whatever state it is in. */
export async function closeQuietly(channel: { close(): Promise<void> } | undefined): Promise<void> {
  await channel?.close().catch(() => undefined);
}

/**
 * Publishes on a confirm channel; the promise settles with the broker's confirm
 * (rejects on a nack or a closed channel). Undefined when amqplib cannot encode
 * the message (a name or property too long, a wrong type): nothing was sent.
 */
export function publishConfirmed(
  channel: amqp.ConfirmChannel,
  exchange: string,
  routingKey: string,
  content: Buffer,
  properties: Options.Publish,
): Promise<void> | undefined {
  let settle: (err: unknown) => void = () => undefined;
  const confirmed = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(new Error(`RabbitMQ did not confirm it (${messageOf(err)})`)) : resolve());
  });
  const callback = (err: unknown) => settle(err);
  const held = confirmsHeld(channel);
  try {
    channel.publish(exchange, routingKey, content, properties, callback);
  } catch (err) {
    if (!(err instanceof TypeError || err instanceof RangeError)) throw err;
    withdrawConfirm(channel, held);
    return undefined;
  }
  return confirmed;
}

/** Text from outside as one printable line: control characters escaped, cut at `max` characters. */
export function printable(text: string, max = 200): string {
  const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  const escaped = text.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return escaped.length > max ? `${escaped.slice(0, max)}… (${escaped.length} chars)` : escaped;
}
