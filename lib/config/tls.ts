import { credentials } from 'amqplib';
import { KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { MoAmqpConfigError, MoAmqpConfigProblem } from '../errors/mo-amqp-config.error';
import { describeValue } from '../util/describe-value';
import { messageOf } from '../util/error-message';
import { safely } from '../util/safely';
import { MASK, MoAmqpTlsOptions, TLS_FIELDS, TlsKey, masked } from './tls-options';

export { explainTlsFailure } from './tls-failure';

/** What amqplib's `connect()` takes, besides the URL, for TLS and the EXTERNAL login. */
export interface TlsConnectionOptions {
  ca?: Buffer;
  cert?: Buffer;
  /** The private key, decrypted: the passphrase goes no further than this file. */
  key?: string;
  rejectUnauthorized?: false;
  credentials?: ReturnType<typeof credentials.external>;
}

export const TLS_VERIFY_OFF_WARNING =
  "AMQP__TLS_VERIFY is false: the broker's certificate is not verified, so anyone on the way to RabbitMQ " +
  'can pose as it and read the traffic, password included. For tests only; name its CA in AMQP__TLS_CA_FILE instead.';

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

function parseCertificate(pem: string | Buffer): X509Certificate | string {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    return messageOf(err);
  }
}
