import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { messageOf } from '../util/error-message';
import { safely } from '../util/safely';
import { shellWord } from '../util/shell-word';
import { parseAmqpUrl, splitUrls } from './amqp-url';
import { MoAmqpTlsOptions, TLS_FIELDS, masked } from './tls-options';

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
