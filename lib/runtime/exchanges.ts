import type { Channel } from 'amqplib';
import { messageOf } from '../util/error-message';

/** How this package treats the MO topic exchanges (the events and the delayed one). */
export interface ExchangeSettings {
  /** `AMQP__EXCHANGE_DURABLE`: the durability they are declared with. */
  readonly exchangeDurable: boolean;
  /** `AMQP__DECLARE_EXCHANGES`: false only checks that they exist. */
  readonly declareExchanges: boolean;
}

/**
 * Declares one MO topic exchange with the configured durability or, with
 * `declareExchanges` off, only checks that it exists: a passive declaration needs
 * no `configure` permission. A refusal closes the channel; see `explainExchangeRefusal`.
 */
export async function setUpExchange(channel: Channel, name: string, settings: ExchangeSettings): Promise<void> {
  if (settings.declareExchanges) await channel.assertExchange(name, 'topic', { durable: settings.exchangeDurable });
  else await channel.checkExchange(name);
}

// The broker's own words (RabbitMQ 3.x), which name the exchange and what each side wants.
const INEQUIVALENT =
  /inequivalent arg '([^']+)' for exchange '([^']*)' in vhost '([^']*)': received '([^']*)' but current is '([^']*)'/;
const MISSING = /no exchange '([^']*)' in vhost '([^']*)'/;
const REFUSED = /access to exchange '([^']*)' in vhost '([^']*)' refused for user '([^']*)'/;

/**
 * What the broker's refusal of one of `names` means, and what fixes it; undefined
 * when the error is about something else. The broker's answer comes as the
 * channel's close, so this reads its text rather than knowing which call failed.
 */
export function explainExchangeRefusal(
  err: unknown,
  names: readonly string[],
  settings: ExchangeSettings,
): string | undefined {
  const text = messageOf(err);
  const ours = (name: string) => names.includes(name);
  let m = INEQUIVALENT.exec(text);
  if (m && ours(m[2])) {
    const [, arg, name, vhost, wanted, current] = m;
    const where = `Exchange "${name}" (vhost "${vhost}")`;
    if (arg === 'durable') {
      // The fix is to want what exists: current is 'true' or 'false'.
      return (
        `${where} exists ${durability(current)}, and this application declares it ${durability(wanted)} ` +
        `(AMQP__EXCHANGE_DURABLE=${settings.exchangeDurable}): set AMQP__EXCHANGE_DURABLE=${current} ` +
        `(option exchangeDurable: ${current}) to share it as it is, or delete the exchange so that it is declared anew`
      );
    }
    if (arg === 'type') {
      return (
        `${where} exists as a ${current} exchange; MO events need a topic exchange: delete it, ` +
        'or choose another name (AMQP__EXCHANGE, AMQP__DELAYED_EXCHANGE)'
      );
    }
    return `${where} exists with ${arg} ${current}, and this application declares it with ${arg} ${wanted}: delete it, or choose another name`;
  }
  m = MISSING.exec(text);
  if (m && ours(m[1])) {
    const where = `Exchange "${m[1]}" does not exist in vhost "${m[2]}"`;
    return settings.declareExchanges
      ? `${where} (deleted while in use?)`
      : `${where}. With AMQP__DECLARE_EXCHANGES=false this application only checks that it exists: ` +
          'have it declared (a topic exchange) by a user with configure permission, or set AMQP__DECLARE_EXCHANGES=true';
  }
  m = REFUSED.exec(text);
  if (m && ours(m[1])) {
    const [, name, vhost, user] = m;
    return settings.declareExchanges
      ? `RabbitMQ user "${user}" may not declare exchange "${name}" (vhost "${vhost}"; no configure permission): ` +
          'set AMQP__DECLARE_EXCHANGES=false (option declareExchanges: false) to only check that it exists, ' +
          'or grant the permission'
      : `RabbitMQ user "${user}" was refused access to exchange "${name}" (vhost "${vhost}")`;
  }
  return undefined;
}

function durability(flag: string): string {
  return flag === 'true' ? 'durable' : 'non-durable';
}
