import * as amqp from 'amqplib';
import { EXCHANGE_NAME } from '../config/amqp-rules';
import { loadMoAmqpOptionsFromEnv } from '../config/mo-amqp-env';
import { brokerUrlsOf } from '../config/mo-amqp-options.schema';
import { explainTlsFailure, tlsConnectionOptions, tlsSecrets } from '../config/tls';
import { explainExchangeRefusal, setUpExchange } from '../runtime/exchanges';
import { errorRedactor, redactUrl } from '../config/redact';
import { parseArgs } from 'node:util';
import { CliIo } from './cli-io';

const HELP = `Usage: mo-amqp tail [--exchange NAME] [--binding KEY]

Prints "[routing_key] body" for every message on the exchange, as the seed's
Python example does, through an exclusive queue that goes away with it. It
shows both shapes OS2mo sends, each body as sent (no key is filtered out):

  [employee.engagement.create] {"uuid": "…", "time": "…"}   a legacy event
  [engagement] "c390b9a2-7202-48e6-972b-ce36a90065c4"       an AMQP-subsystem message

The exchange is declared as AMQP__EXCHANGE_DURABLE says (only checked with
AMQP__DECLARE_EXCHANGES=false).

Options:
  --exchange NAME   default: AMQP__EXCHANGE, else os2mo
  --binding KEY     a topic binding such as employee.*.create or engagement;
                    default # (every message, one-word keys too). "#" words side
                    by side are one ("#.#.#" is "#"): RabbitMQ 4.3 refuses more
                    than two
  -h, --help        this text`;

const BINDING = /^(?:[#*]|[\w-]+)(?:\.(?:[#*]|[\w-]+))*$/;

/**
 * The same binding with each run of "#" words made one: "#" matches any number of
 * words, so "#.#.#" matches what "#" does, and RabbitMQ 4.3 refuses a binding with
 * more than two "#" (the seed's own script binds "#.#.#").
 */
export function collapseHashes(binding: string): string {
  return binding.replace(/(?:^|\.)#(?:\.#)+(?=\.|$)/g, (run) => (run.startsWith('.') ? '.#' : '#'));
}

/** `mo-amqp tail`: 0 after Ctrl-C, 1 when the broker fails, 2 for bad arguments. */
export async function tailCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { exchange: { type: 'string' }, binding: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const options = loadMoAmqpOptionsFromEnv(io.env);
  const exchange = values.exchange ?? options.exchange;
  const given = values.binding ?? '#';
  if (!EXCHANGE_NAME.pattern.test(exchange)) {
    io.err(`mo-amqp tail: --exchange "${exchange}" is not an exchange name: ${EXCHANGE_NAME.allowed}`);
    return 2;
  }
  if (!BINDING.test(given)) {
    io.err(`mo-amqp tail: --binding "${given}" is not a topic binding (words, "*" or "#", separated by dots)`);
    return 2;
  }
  const binding = collapseHashes(given);
  if (binding !== given) io.err(`mo-amqp tail: binding "${binding}", which matches what "${given}" does`);
  const urls = brokerUrlsOf(options);
  const redact = errorRedactor(urls, tlsSecrets(options));
  // The same TLS files and login as the library's (a bad file is a config error: exit 2).
  const socketOptions = {
    timeout: options.connectTimeoutMs,
    ...tlsConnectionOptions(options, (warning) => io.err(`mo-amqp tail: warning: ${warning}`)),
  };

  // A cluster's URLs are tried in turn; the error of the last one is told.
  let connection: amqp.ChannelModel | undefined;
  let broker = '';
  let lastError: unknown;
  for (const url of urls) {
    broker = redactUrl(url);
    try {
      connection = await amqp.connect(url, socketOptions);
      break;
    } catch (err) {
      lastError = err;
    }
  }
  if (!connection) {
    const why = explainTlsFailure(lastError, options) ?? redact(lastError);
    io.err(`mo-amqp tail: could not connect to RabbitMQ at ${urls.map(redactUrl).join(', ')}: ${why}`);
    return 1;
  }
  const open = connection;
  const lost = new Promise<string>((resolve) => {
    open.on('error', (err: unknown) => resolve(redact(err)));
    open.on('close', () => resolve('the connection closed'));
  });
  try {
    const channel = await open.createChannel();
    // A refused declaration closes the channel; the refused call reports it below.
    channel.on('error', () => undefined);
    await setUpExchange(channel, exchange, options);
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, exchange, binding);
    await channel.consume(
      queue,
      (message) => message && io.out(`[${message.fields.routingKey}] ${message.content.toString('utf8')}`),
      { noAck: true },
    );
    io.err(` [*] Waiting for messages on "${exchange}" (binding ${binding}) at ${broker}. To exit press CTRL+C`);
  } catch (err) {
    io.err(
      `mo-amqp tail: RabbitMQ at ${broker} refused: ${explainExchangeRefusal(err, [exchange], options) ?? redact(err)}`,
    );
    await open.close().catch(() => undefined);
    return 1;
  }
  const outcome = await Promise.race([io.stopped.then(() => undefined), lost]);
  if (outcome !== undefined) {
    io.err(`mo-amqp tail: lost RabbitMQ at ${broker}: ${outcome}`);
    return 1;
  }
  await open.close().catch(() => undefined);
  return 0;
}
