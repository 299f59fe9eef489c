import { parseAmqpUrl } from './amqp-url';
import { messageOf } from '../util/error-message';

const MASK = '***';

// user:password@ inside anything that looks like scheme://authority: a second guard for text.
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@/\s]*@/gi;

/**
 * An AMQP URL (or a comma-separated list of them) as it may be shown. A URL that
 * follows the grammar shows its user, host, port and vhost, the password masked
 * (`amqp://guest:***@host:5672/vhost`). A malformed one cannot be trusted to say
 * where its password ends (a comma in it even splits the list), so more goes:
 * all before its last `@`; without an `@`, all after the first `:` that follows
 * the scheme; and a piece with no scheme at all, whole.
 */
export function redactUrl(urls: string): string {
  return urls
    .split(',')
    .map((piece) => {
      const url = parseAmqpUrl(piece.trim());
      if (url) return url.rawPassword === undefined ? piece : piece.replace(`:${url.rawPassword}@`, `:${MASK}@`);
      return maskMalformed(piece);
    })
    .join(',');
}

function maskMalformed(piece: string): string {
  const scheme = piece.indexOf('://');
  const start = scheme < 0 ? 0 : scheme + 3;
  const at = piece.lastIndexOf('@');
  if (at >= start) return `${piece.slice(0, start)}${MASK}${piece.slice(at)}`;
  if (scheme < 0) return piece.trim() === '' ? piece : MASK;
  const colon = piece.indexOf(':', start);
  return colon < 0 ? piece : `${piece.slice(0, colon + 1)}${MASK}`;
}

/**
 * Removes every occurrence of the given secrets (raw and URL-encoded) and of
 * any URL password from a message, as a last guard before text leaves the library.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first, so a secret that contains another is masked whole.
  const forms = new Set(secrets.filter(Boolean).flatMap((secret) => [secret, encodeURIComponent(secret)]));
  for (const form of [...forms].sort((a, b) => b.length - a.length)) out = out.split(form).join(MASK);
  return out.replace(URL_CREDENTIALS, `$1${MASK}@`);
}

/** The password of each URL, decoded and as written; none for a URL without one. */
export function secretsOf(urls: readonly string[]): string[] {
  return urls.flatMap((text) => {
    const url = parseAmqpUrl(text);
    return url?.password ? [url.password, url.rawPassword as string] : [];
  });
}

/** What an error thrown while talking to these brokers says, with their passwords (and `extra` secrets) masked. */
export function errorRedactor(urls: readonly string[], extra: readonly string[] = []): (err: unknown) => string {
  const secrets = [...secretsOf(urls), ...extra];
  return (err) => redactSecrets(messageOf(err), secrets);
}
