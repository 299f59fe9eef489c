import { MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { describeValue } from '../util/describe-value';
import { BOOLEAN, pathRule, textRule } from './amqp-rules';
import { splitUrls } from './amqp-url';
import type { ResolvedMoAmqpOptions } from './mo-amqp-options.interface';
import { optionTable } from './option-table';

/** The TLS options' part of the module's option table (`MO_AMQP_FIELDS`). */
export const TLS_FIELDS = optionTable({
  tlsCaFile: {
    env: 'AMQP__TLS_CA_FILE',
    kind: 'string',
    rule: pathRule("the path of a PEM file of the CA certificate(s) that sign the broker's certificate"),
    default: undefined,
    doc: "PEM file of the CA certificate(s) that sign the broker's certificate",
  },
  tlsCertFile: {
    env: 'AMQP__TLS_CERT_FILE',
    kind: 'string',
    rule: pathRule("the path of a PEM file of this client's certificate"),
    default: undefined,
    doc: "PEM file of this client's certificate",
  },
  tlsKeyFile: {
    env: 'AMQP__TLS_KEY_FILE',
    kind: 'string',
    rule: pathRule("the path of a PEM file of the client certificate's private key"),
    default: undefined,
    doc: "PEM file of the client certificate's private key",
  },
  tlsKeyPassphrase: {
    env: 'AMQP__TLS_KEY_PASSPHRASE',
    kind: 'string',
    rule: textRule('the passphrase of the encrypted key in AMQP__TLS_KEY_FILE'),
    default: undefined,
    doc: 'The passphrase of an encrypted `tlsKeyFile`.',
  },
  tlsVerify: {
    env: 'AMQP__TLS_VERIFY',
    kind: 'bool',
    rule: BOOLEAN,
    default: true,
    doc: "Whether the broker's certificate is verified.",
  },
  auth: {
    env: 'AMQP__AUTH',
    kind: 'enum',
    rule: {
      values: ['plain', 'external'],
      allowed: 'plain (the user and password of AMQP__URL) or external (the client certificate)',
    },
    default: 'plain',
    doc: 'How to log in',
  },
});

/** The options that concern TLS and the login by client certificate. */
export type TlsKey = keyof typeof TLS_FIELDS;

/** What TLS needs of the options (the resolved options have it all). */
export type MoAmqpTlsOptions = Pick<ResolvedMoAmqpOptions, 'url' | TlsKey>;

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
