import { messageOf } from './error-message';

const MASK = '***';

// user:password@ inside anything that looks like scheme://authority.
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@/\s]*@/gi;

/**
 * Masks the password of an AMQP URL: `amqp://guest:***@host:5672/vhost`.
 * Works on text that is not a valid URL too, so a malformed value can be shown.
 */
export function redactUrl(url: string): string {
  return url.replace(URL_CREDENTIALS, `$1${MASK}@`);
}

/**
 * Removes every occurrence of the given secrets (raw and URL-encoded) and of
 * any URL password from a message, as a last guard before text leaves the library.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = redactUrl(text);
  for (const secret of secrets) {
    if (!secret) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) {
      out = out.split(form).join(MASK);
    }
  }
  return out;
}

/** The password carried by an AMQP URL, decoded, or undefined when it has none. */
export function passwordOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const password = new URL(url).password;
    return password ? decodeURIComponent(password) : undefined;
  } catch {
    const match = /:\/\/[^:/?#@\s]*:([^@/\s]*)@/.exec(url);
    return match?.[1] || undefined;
  }
}

/** What an error thrown while talking to these brokers says, with their passwords masked. */
export function errorRedactor(urls: readonly string[]): (err: unknown) => string {
  const secrets = urls.map((url) => passwordOf(url) ?? '');
  return (err) => redactSecrets(messageOf(err), secrets);
}
