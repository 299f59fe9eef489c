import { credentials } from 'amqplib';
import { KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { MoAmqpConfigError, MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { describeValue } from '../util/describe-value';
import { messageOf } from '../util/error-message';
import { shellWord } from '../util/shell-word';
import { parseAmqpUrl, splitUrls } from './amqp-url';
import type { ResolvedMoAmqpOptions } from './mo-amqp-options.interface';

type TlsKey = 'tlsCaFile' | 'tlsCertFile' | 'tlsKeyFile' | 'tlsKeyPassphrase' | 'tlsVerify' | 'auth';

/** What TLS needs of the options (the resolved options have it all). */
export type MoAmqpTlsOptions = Pick<ResolvedMoAmqpOptions, 'url' | TlsKey>;

/** What amqplib's `connect()` takes, besides the URL, for TLS and the EXTERNAL login. */
export interface TlsConnectionOptions {
  ca?: Buffer;
  cert?: Buffer;
  /** The private key, decrypted: the passphrase goes no further than this file. */
  key?: string;
  rejectUnauthorized?: false;
  credentials?: ReturnType<typeof credentials.external>;
}

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

const MASK = '***';

export const TLS_VERIFY_OFF_WARNING =
  "AMQP__TLS_VERIFY is false: the broker's certificate is not verified, so anyone on the way to RabbitMQ " +
  'can pose as it and read the traffic, password included. For tests only; name its CA in AMQP__TLS_CA_FILE instead.';

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

/**
 * The TLS part of amqplib's connection options, from the files the options name,
 * read and checked now: a file that cannot be read, is not PEM, a key that is not
 * the certificate's or a wrong passphrase throws `MoAmqpConfigError` (the
 * passphrase shown as ***). Empty when no TLS option is set (Node's defaults).
 * `warn` is told when verification is off.
 */
export function tlsConnectionOptions(
  options: MoAmqpTlsOptions,
  warn: (message: string) => void = () => undefined,
): TlsConnectionOptions {
  const problems: MoAmqpConfigProblem[] = [];
  const fail = (key: TlsKey, received: string, allowed: string) =>
    problems.push({ name: `${TLS_FIELDS[key].env} (${key})`, received, allowed });
  const read = (key: 'tlsCaFile' | 'tlsCertFile' | 'tlsKeyFile', what: string): Buffer | undefined => {
    const path = options[key];
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      fail(key, describeValue(path), `${what} this process can read (${messageOf(err)})`);
      return undefined;
    }
  };
  const result: TlsConnectionOptions = {};

  const ca = read('tlsCaFile', 'a PEM file of CA certificates');
  if (ca) {
    const blocks = ca.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g) ?? [];
    const broken = blocks.map(parseCertificate).find((why) => typeof why === 'string');
    if (blocks.length === 0 || broken !== undefined) {
      const why = broken ?? 'it holds no -----BEGIN CERTIFICATE----- block';
      fail('tlsCaFile', describeValue(options.tlsCaFile), `a PEM file of CA certificates (${why})`);
    } else {
      result.ca = ca;
    }
  }

  const certPem = read('tlsCertFile', 'a PEM file of a certificate');
  const certificate = certPem && parseCertificate(certPem);
  if (typeof certificate === 'string') {
    fail('tlsCertFile', describeValue(options.tlsCertFile), `a PEM file of a certificate (${certificate})`);
  }
  const keyPem = read('tlsKeyFile', 'a PEM file of a private key');
  let key: KeyObject | undefined;
  if (keyPem) {
    const passphrase = options.tlsKeyPassphrase || undefined;
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4,ENCRYPTED/.test(keyPem.toString('latin1'));
    const keyFile = `${TLS_FIELDS.tlsKeyFile.env} (${options.tlsKeyFile})`;
    if (encrypted && !passphrase) {
      fail(
        'tlsKeyFile',
        describeValue(options.tlsKeyFile),
        `a key that is not encrypted, or its passphrase in ${TLS_FIELDS.tlsKeyPassphrase.env} (it is encrypted)`,
      );
    } else {
      try {
        key = createPrivateKey({ key: keyPem, passphrase });
      } catch (err) {
        if (encrypted) {
          fail('tlsKeyPassphrase', MASK, `the passphrase of ${keyFile}: it does not decrypt it (${messageOf(err)})`);
        } else {
          fail('tlsKeyFile', describeValue(options.tlsKeyFile), `a PEM file of a private key (${messageOf(err)})`);
        }
      }
    }
  }
  if (certificate instanceof X509Certificate && key) {
    if (safely(() => certificate.checkPrivateKey(key)) === true) {
      result.cert = certPem;
      result.key = key.export({ type: 'pkcs8', format: 'pem' }).toString();
    } else {
      fail(
        'tlsKeyFile',
        describeValue(options.tlsKeyFile),
        `the private key of the certificate in ${TLS_FIELDS.tlsCertFile.env} (${options.tlsCertFile}); this key is another's`,
      );
    }
  }
  if (problems.length === 0) {
    // Node's own last word on the combination.
    const refused = safely(() => void createSecureContext({ ca: result.ca, cert: result.cert, key: result.key }));
    if (refused instanceof Error) {
      // Blame the CA file only when Node names the CA, or when there is no client certificate to blame.
      const key: TlsKey = /\bca\b/i.test(refused.message) || !result.cert ? 'tlsCaFile' : 'tlsCertFile';
      fail(key, describeValue(options[key]), `files Node can use for TLS (${messageOf(refused)})`);
    }
  }
  if (problems.length > 0) throw new MoAmqpConfigError(masked(problems, options.tlsKeyPassphrase));

  if (!options.tlsVerify) {
    result.rejectUnauthorized = false;
    warn(TLS_VERIFY_OFF_WARNING);
  }
  if (options.auth === 'external') result.credentials = credentials.external();
  return result;
}

/** The secrets among the TLS options (the key's passphrase), for masking in what is logged. */
export function tlsSecrets(options: Pick<MoAmqpTlsOptions, 'tlsKeyPassphrase'>): string[] {
  return options.tlsKeyPassphrase ? [options.tlsKeyPassphrase] : [];
}

// Node's codes for a server certificate that no trusted CA signed.
const UNTRUSTED = [
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
];
const OUT_OF_DATE = ['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID'];
// Node's other codes of certificate verification.
const NOT_ACCEPTED =
  /^(CERT_|UNABLE_TO_|INVALID_(CA|PURPOSE)$|PATH_LENGTH_EXCEEDED$|HOSTNAME_MISMATCH$|CRL_|ERROR_IN_CERT)/;
// The same failures as Node words them, for an error that carries no code (a message passed on as text).
const MESSAGES: [RegExp, string][] = [
  [/self[- ]signed certificate in certificate chain/i, 'SELF_SIGNED_CERT_IN_CHAIN'],
  [/self[- ]signed certificate/i, 'DEPTH_ZERO_SELF_SIGNED_CERT'],
  [/unable to verify the first certificate/i, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  [/unable to get (local )?issuer certificate/i, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'],
  [/certificate has expired/i, 'CERT_HAS_EXPIRED'],
  [/certificate is not yet valid/i, 'CERT_NOT_YET_VALID'],
  [/does not match certificate's altnames/i, 'ERR_TLS_CERT_ALTNAME_INVALID'],
  [/wrong version number|packet length too long|record layer failure/i, 'ERR_SSL_WRONG_VERSION_NUMBER'],
];

/**
 * Why a connection failed, when TLS or the EXTERNAL login is why: one sentence
 * naming the cause and the setting (or broker file) to fix, the error's own
 * words at its end. Undefined for any other failure (no broker, a refused
 * password), and for one that waiting might cure.
 */
export function explainTlsFailure(err: unknown, options: MoAmqpTlsOptions): string | undefined {
  const message = messageOf(err).trim();
  const code = codeOf(err, message);
  const reason = typeof err === 'object' && err !== null ? (err as { reason?: unknown }).reason : undefined;
  const words = typeof reason === 'string' && code?.startsWith('ERR_SSL_') ? reason : message.split('\n')[0];
  const said = code && !words.includes(code) ? `(${words}; ${code})` : `(${words})`;
  const ca = options.tlsCaFile ? `${TLS_FIELDS.tlsCaFile.env} (${options.tlsCaFile})` : undefined;
  const cert = options.tlsCertFile ? `${TLS_FIELDS.tlsCertFile.env} (${options.tlsCertFile})` : undefined;
  let sentence: string | undefined;

  if (/mechanism EXTERNAL/i.test(message) && /ACCESS[-_]REFUSED|\b403\b/.test(message)) {
    const cn = commonNameOf(options.tlsCertFile);
    const user = shellWord(cn ?? '<CN>');
    sentence =
      `RabbitMQ refused the EXTERNAL login of the client certificate in ${cert ?? TLS_FIELDS.tlsCertFile.env}: ` +
      `it logs in the user named as the certificate's subject (CN ${cn ? `"${cn}"` : 'unknown'} with ` +
      'ssl_cert_login_from = common_name), who must exist and have permissions on the vhost ' +
      `(rabbitmqctl add_user ${user} <any password>; ` +
      `rabbitmqctl set_permissions -p ${vhostOf(options.url)} ${user} ".*" ".*" ".*") ${said}`;
  } else if (/SASL mechanism EXTERNAL is not provided/i.test(message)) {
    sentence =
      `RabbitMQ does not offer the EXTERNAL login that ${TLS_FIELDS.auth.env}=external asks for: enable its ` +
      'rabbitmq_auth_mechanism_ssl plugin and list EXTERNAL in auth_mechanisms, or log in with ' +
      `${TLS_FIELDS.auth.env}=plain ${said}`;
  } else if (code === undefined) {
    return undefined;
  } else if (UNTRUSTED.includes(code)) {
    sentence = ca
      ? `the server's certificate is not signed by a CA in ${ca}: put the CA certificate that signed it in that file ${said}`
      : `the server's certificate is not signed by a CA Node trusts by default: set ${TLS_FIELDS.tlsCaFile.env} ` +
        `to a PEM file of the CA that signed it ${said}`;
  } else if (OUT_OF_DATE.includes(code)) {
    sentence =
      "the server's certificate (or a CA certificate of its chain) is outside its validity period: renew it on " +
      `the broker (its ssl_options.certfile), or check this machine's clock ${said}`;
  } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    sentence =
      "the server's certificate is not made out to the host name in AMQP__URL: use a host name the certificate " +
      `lists, or give the broker a certificate with this one in its subjectAltName ${said}`;
  } else if (NOT_ACCEPTED.test(code)) {
    sentence = `the server's certificate was not accepted: check it, and ${ca ?? TLS_FIELDS.tlsCaFile.env} ${said}`;
  } else if (/CERTIFICATE_REQUIRED/.test(code) || (!cert && /ALERT_HANDSHAKE_FAILURE/.test(code))) {
    sentence =
      `the server asks for a client certificate: set ${TLS_FIELDS.tlsCertFile.env} and ` +
      `${TLS_FIELDS.tlsKeyFile.env} to one it trusts ${said}`;
  } else if (
    cert &&
    /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)/.test(code)
  ) {
    const why = /UNKNOWN_CA/.test(code)
      ? "the broker does not trust the CA that signed it: add that CA to the broker's ssl_options.cacertfile, or use a certificate its CA signed"
      : /CERTIFICATE_EXPIRED/.test(code)
        ? 'it has expired: renew it'
        : 'give it a certificate the broker accepts';
    sentence = `the server refused the client certificate in ${cert}: ${why} ${said}`;
  } else if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    sentence =
      'the server did not answer in TLS: the port of an amqps:// AMQP__URL must be the TLS listener of the broker ' +
      `(usually 5671), not its plain AMQP port (usually 5672) ${said}`;
  } else if (code.startsWith('ERR_SSL_')) {
    sentence = `the TLS handshake with the server failed (see the broker's log for its side) ${said}`;
  }
  return sentence && masked(sentence, options.tlsKeyPassphrase);
}

/** The error's code, or for one without (a message passed on as text) the code its words stand for. */
function codeOf(err: unknown, message: string): string | undefined {
  const own = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  if (typeof own === 'string') return own;
  // OpenSSL's words for a TLS alert from the server: "tlsv1 alert unknown ca".
  const alert = /\balert ([a-z0-9 ]+?)\s*(?::|$)/im.exec(message)?.[1];
  if (alert) return `ERR_SSL_ALERT_${alert.toUpperCase().replace(/ /g, '_')}`;
  return MESSAGES.find(([pattern]) => pattern.test(message))?.[1];
}

function parseCertificate(pem: string | Buffer): X509Certificate | string {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    return messageOf(err);
  }
}

/** The vhost of the (first) URL, as a shell word; "/" when it names none. */
function vhostOf(urls: string | undefined): string {
  const vhost = parseAmqpUrl(splitUrls(urls ?? '')[0])?.vhost;
  return vhost ? shellWord(vhost) : '/';
}

/** The CN of the certificate in `path`, or undefined when it cannot be read. */
function commonNameOf(path: string | undefined): string | undefined {
  if (!path) return undefined;
  const subject = safely(() => new X509Certificate(readFileSync(path)).subject);
  return typeof subject === 'string' ? /^CN=(.*)$/m.exec(subject)?.[1] : undefined;
}

function safely<T>(fn: () => T): T | Error {
  try {
    return fn();
  } catch (err) {
    return err instanceof Error ? err : new Error(messageOf(err));
  }
}

/** A last guard: the passphrase never leaves in text, whatever an error said. */
function masked<T extends string | readonly MoAmqpConfigProblem[]>(what: T, secret: string | undefined): T {
  if (!secret) return what;
  const mask = (text: string) => text.split(secret).join(MASK);
  if (typeof what === 'string') return mask(what) as T;
  return (what as readonly MoAmqpConfigProblem[]).map((p) => ({
    name: p.name,
    received: mask(p.received),
    allowed: mask(p.allowed),
  })) as unknown as T;
}
