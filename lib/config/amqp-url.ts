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

/** amqplib's frameMax when the URL names none. */
const AMQPLIB_FRAME_MAX = 131_072;

/**
 * What is wrong with the frame-size limit a URL's query gives amqplib
 * (`maxFrameSize`, amqplib 2.3 on; 0.10 ignores it), or undefined. amqplib 2.3
 * refuses any value but 0 or a whole number from 4096 up at every connect,
 * which would look like a broker not answering; one below the frames RabbitMQ
 * sends (up to the negotiated frameMax) would close the connection at the first
 * large message.
 */
export function frameLimitProblem(url: string): string | undefined {
  const query = GRAMMAR.exec(url)?.[7];
  if (query === undefined) return undefined;
  const params = new URLSearchParams(query);
  const limit = params.get('maxFrameSize');
  if (limit === null) return undefined;
  const frameMax = /^\d+$/.test(params.get('frameMax') ?? '') ? Number(params.get('frameMax')) : AMQPLIB_FRAME_MAX;
  const value = /^\d+$/.test(limit) ? Number(limit) : NaN;
  if (value === 0 || (value >= 4096 && value >= frameMax)) return undefined;
  return (
    `maxFrameSize=0 (no limit) or a whole number of bytes from 4096 up, and not below frameMax ` +
    `(${frameMax}${params.has('frameMax') ? '' : ", amqplib's default"}): the largest frame RabbitMQ may send`
  );
}
