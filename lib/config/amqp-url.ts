import { PORT } from './amqp-rules';

/**
 * AMQP URLs read by the grammar of RFC 3986, strictly. Node's `URL` and
 * amqplib's parser each repair a malformed URL their own way (an unencoded `@`,
 * `/` or space in a password), so a password could be half taken for a host and
 * shown in a log. A URL is accepted only when there is exactly one reading of it.
 */

// Characters a user name, password or vhost may hold unencoded: RFC 3986's
// unreserved and sub-delims, minus the comma that separates the URLs of a cluster.
const PLAIN = "A-Za-z0-9\\-._~!$&'()*+;=";
const PCT = '%[0-9A-Fa-f]{2}';
const USER = `(?:[${PLAIN}]|${PCT})*`;
const PASSWORD = `(?:[${PLAIN}:]|${PCT})*`;
const HOST = '\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._-]+';
const VHOST = `(?:[${PLAIN}:]|${PCT})*`;
const QUERY = `(?:[${PLAIN}:@/?]|${PCT})*`;
const GRAMMAR = new RegExp(
  `^(amqps?)://(?:(${USER})(?::(${PASSWORD}))?@)?(${HOST})(?::(\\d{1,5}))?(?:/(${VHOST}))?(?:\\?(${QUERY}))?$`,
  'i',
);

/** One AMQP URL, taken apart; user, password and vhost decoded. */
export interface AmqpUrl {
  readonly scheme: 'amqp' | 'amqps';
  readonly user: string;
  /** Undefined when the URL has none. */
  readonly password: string | undefined;
  /** The password exactly as written in the URL (percent-encoded), for masking. */
  readonly rawPassword: string | undefined;
  readonly host: string;
  readonly port: number | undefined;
  readonly vhost: string | undefined;
}

/** How to write what the grammar refuses; said in every error about a malformed URL. */
export const PERCENT_ENCODE_HINT =
  "characters other than letters, digits and -._~!$&'()*+;= in the user name, password or vhost must be percent-encoded " +
  '(space %20, / %2F, @ %40, % %25, # %23, ? %3F, comma %2C; : in the user name %3A), e.g. with encodeURIComponent()';

/** The URL taken apart, or undefined when it does not follow the grammar (or decodes to no text). */
export function parseAmqpUrl(text: string): AmqpUrl | undefined {
  const match = GRAMMAR.exec(text);
  if (!match) return undefined;
  const [, scheme, user = '', rawPassword, host, port, vhost] = match;
  try {
    const portNumber = port === undefined ? undefined : Number(port);
    if (portNumber !== undefined && (portNumber < PORT.min || portNumber > PORT.max)) return undefined;
    // Node's URL must agree on the host (an IPv6 address it cannot read, for one).
    if (new URL(text).hostname === '') return undefined;
    return {
      scheme: scheme.toLowerCase() as AmqpUrl['scheme'],
      user: decodeURIComponent(user),
      password: rawPassword === undefined ? undefined : decodeURIComponent(rawPassword),
      rawPassword,
      host,
      port: portNumber,
      vhost: vhost === undefined ? undefined : decodeURIComponent(vhost),
    };
  } catch {
    return undefined; // a percent sequence that is not UTF-8
  }
}

/** The URLs of a comma-separated list (a password with a comma must be written %2C). */
export function splitUrls(urls: string): string[] {
  return urls.split(',').map((url) => url.trim());
}
