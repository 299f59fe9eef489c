import { MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { describeValue } from '../util/describe-value';
import { splitUrls } from './amqp-url';
import type { ResolvedMoAmqpOptions } from './mo-amqp-options.interface';

/** The options that concern TLS and the login by client certificate. */
export type TlsKey = 'tlsCaFile' | 'tlsCertFile' | 'tlsKeyFile' | 'tlsKeyPassphrase' | 'tlsVerify' | 'auth';

/** What TLS needs of the options (the resolved options have it all). */
export type MoAmqpTlsOptions = Pick<ResolvedMoAmqpOptions, 'url' | TlsKey>;

const BOOLEAN = 'true, false, 1, 0, yes or no (any case)';

/** The TLS options' part of `FIELDS`: environment variable, what is allowed, default. */
export const TLS_FIELDS = {
  tlsCaFile: {
    env: 'AMQP__TLS_CA_FILE',
    allowed: "the path of a PEM file of the CA certificate(s) that sign the broker's certificate",
    defaultValue: undefined,
  },
  tlsCertFile: {
    env: 'AMQP__TLS_CERT_FILE',
    allowed: "the path of a PEM file of this client's certificate",
    defaultValue: undefined,
  },
  tlsKeyFile: {
    env: 'AMQP__TLS_KEY_FILE',
    allowed: "the path of a PEM file of the client certificate's private key",
    defaultValue: undefined,
  },
  tlsKeyPassphrase: {
    env: 'AMQP__TLS_KEY_PASSPHRASE',
    allowed: 'the passphrase of the encrypted key in AMQP__TLS_KEY_FILE',
    defaultValue: undefined,
  },
  tlsVerify: { env: 'AMQP__TLS_VERIFY', allowed: BOOLEAN, defaultValue: true },
  auth: {
    env: 'AMQP__AUTH',
    allowed: 'plain (the user and password of AMQP__URL) or external (the client certificate)',
    defaultValue: 'plain',
  },
} as const;

/** What the passphrase is shown as, wherever it would appear. */
export const MASK = '***';

const isSet = (value: unknown): boolean => typeof value === 'string' && value !== '';

/**
 * Combinations the TLS options cannot work in: TLS settings without amqps://
 * URLs, a certificate without its key (or the reverse), a passphrase without a
 * key, the EXTERNAL login without a certificate. `nameOf` names a field as the
 * user set it (option or environment variable).
 */
export function tlsProblems(
  options: Partial<MoAmqpTlsOptions>,
  nameOf: (key: TlsKey | 'url') => string,
): MoAmqpConfigProblem[] {
  const problems: MoAmqpConfigProblem[] = [];
  const add = (key: TlsKey, allowed: string) =>
    problems.push({
      name: nameOf(key),
      received: key === 'tlsKeyPassphrase' ? MASK : describeValue(options[key]),
      allowed,
    });
  const asked: TlsKey[] = (['tlsCaFile', 'tlsCertFile', 'tlsKeyFile', 'tlsKeyPassphrase'] as const).filter((key) =>
    isSet(options[key]),
  );
  if (options.tlsVerify === false) asked.push('tlsVerify');
  if (options.auth === 'external') asked.push('auth');
  const urls = typeof options.url === 'string' ? splitUrls(options.url) : [];
  if (!urls.every((url) => /^amqps:\/\//i.test(url)) || urls.length === 0) {
    const url = nameOf('url');
    const why =
      urls.length === 0 ? `without ${url} the broker is reached by amqp://host:port` : `${url} has an amqp:// one`;
    for (const key of asked) add(key, `only with an amqps:// ${url}: TLS settings need amqps:// URLs (${why})`);
    return problems;
  }
  const [cert, key] = [nameOf('tlsCertFile'), nameOf('tlsKeyFile')];
  if (isSet(options.tlsCertFile) && !isSet(options.tlsKeyFile)) {
    add('tlsCertFile', `a certificate only together with its private key in ${key}`);
  }
  if (isSet(options.tlsKeyFile) && !isSet(options.tlsCertFile)) {
    add('tlsKeyFile', `a private key only together with its certificate in ${cert}`);
  }
  if (isSet(options.tlsKeyPassphrase) && !isSet(options.tlsKeyFile)) {
    add('tlsKeyPassphrase', `a passphrase only together with the encrypted key in ${key} (and ${cert})`);
  }
  if (options.auth === 'external' && !isSet(options.tlsCertFile)) {
    add('auth', `external only with a client certificate in ${cert} and ${key}, which RabbitMQ logs in by`);
  }
  return problems;
}

/** A last guard: the passphrase never leaves in text, whatever an error said. */
export function masked<T extends string | readonly MoAmqpConfigProblem[]>(what: T, secret: string | undefined): T {
  if (!secret) return what;
  const mask = (text: string) => text.split(secret).join(MASK);
  if (typeof what === 'string') return mask(what) as T;
  return (what as readonly MoAmqpConfigProblem[]).map((p) => ({
    name: p.name,
    received: mask(p.received),
    allowed: mask(p.allowed),
  })) as unknown as T;
}
