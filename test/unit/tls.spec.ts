import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MoAmqpConfigError, ResolvedMoAmqpOptions, loadMoAmqpOptionsFromEnv } from '../../lib';
import { resolveMoAmqpOptions } from '../../lib/config/mo-amqp-options.schema';
import { TLS_VERIFY_OFF_WARNING, explainTlsFailure, tlsConnectionOptions } from '../../lib/config/tls';
import { TlsFiles, makeTlsFiles } from '../support/tls';

const URL = 'amqps://guest:guest@localhost:5691';

function configError(fn: () => unknown): MoAmqpConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MoAmqpConfigError) return err;
    throw err;
  }
  throw new Error('expected a MoAmqpConfigError');
}

/** An error as Node's TLS or amqplib reports it. */
function failure(message: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), fields);
}

describe('TLS options', () => {
  let files: TlsFiles;
  const options = (extra: Partial<ResolvedMoAmqpOptions> = {}): ResolvedMoAmqpOptions =>
    resolveMoAmqpOptions({ enabled: true, url: URL, ...extra });

  beforeAll(async () => {
    files = await makeTlsFiles();
  });

  afterAll(() => files.remove());

  describe('validated at boot', () => {
    it('reads the TLS variables', () => {
      const resolved = loadMoAmqpOptionsFromEnv({
        AMQP__URL: 'amqps://localhost',
        AMQP__TLS_CA_FILE: files.ca,
        AMQP__TLS_CERT_FILE: files.cert,
        AMQP__TLS_KEY_FILE: files.encryptedKey,
        AMQP__TLS_KEY_PASSPHRASE: files.passphrase,
        AMQP__TLS_VERIFY: 'no',
        AMQP__AUTH: 'external',
      });
      expect(resolved).toMatchObject({
        tlsCaFile: files.ca,
        tlsCertFile: files.cert,
        tlsKeyFile: files.encryptedKey,
        tlsKeyPassphrase: files.passphrase,
        tlsVerify: false,
        auth: 'external',
      });
      expect(loadMoAmqpOptionsFromEnv({})).toMatchObject({
        tlsCaFile: undefined,
        tlsCertFile: undefined,
        tlsKeyFile: undefined,
        tlsKeyPassphrase: undefined,
        tlsVerify: true,
        auth: 'plain',
      });
    });

    it('refuses TLS settings without an amqps:// URL, naming each variable', () => {
      const err = configError(() =>
        loadMoAmqpOptionsFromEnv({
          AMQP__URL: 'amqp://guest:guest@localhost:5672',
          AMQP__TLS_CA_FILE: '/etc/ca.pem',
          AMQP__TLS_VERIFY: 'false',
        }),
      );
      expect(err.problems.map((p) => p.name)).toEqual(['AMQP__TLS_CA_FILE', 'AMQP__TLS_VERIFY']);
      expect(err.message).toContain(
        'AMQP__TLS_CA_FILE: received "/etc/ca.pem"; allowed: only with an amqps:// AMQP__URL',
      );
      // Host and port make an amqp:// URL too.
      const hostOnly = configError(() =>
        loadMoAmqpOptionsFromEnv({ AMQP__HOST: 'mq', AMQP__TLS_CERT_FILE: '/c.pem', AMQP__TLS_KEY_FILE: '/k.pem' }),
      );
      expect(hostOnly.problems.map((p) => p.name)).toEqual(['AMQP__TLS_CERT_FILE', 'AMQP__TLS_KEY_FILE']);
      expect(hostOnly.message).toContain('without AMQP__URL the broker is reached by amqp://host:port');
      // One plain URL in a cluster is one too many.
      expect(() => loadMoAmqpOptionsFromEnv({ AMQP__URL: 'amqps://a, amqp://b', AMQP__TLS_CA_FILE: files.ca })).toThrow(
        /AMQP__TLS_CA_FILE: .*amqps:\/\//,
      );
    });

    it('wants a certificate and its key together, and EXTERNAL only with them', () => {
      const err = configError(() =>
        loadMoAmqpOptionsFromEnv({ AMQP__URL: URL, AMQP__TLS_CERT_FILE: files.cert, AMQP__AUTH: 'external' }),
      );
      expect(err.message).toContain('AMQP__TLS_CERT_FILE: received');
      expect(err.message).toContain('only together with its private key in AMQP__TLS_KEY_FILE');
      expect(configError(() => options({ tlsKeyFile: files.key })).message).toContain('tlsKeyFile: received');
      const external = configError(() => options({ auth: 'external' }));
      expect(external.message).toContain(
        'auth: received "external"; allowed: external only with a client certificate in tlsCertFile',
      );
      expect(configError(() => loadMoAmqpOptionsFromEnv({ AMQP__AUTH: 'cert' })).message).toContain(
        'AMQP__AUTH: received "cert"; allowed: plain',
      );
      expect(configError(() => loadMoAmqpOptionsFromEnv({ AMQP__TLS_VERIFY: 'maybe' })).message).toContain(
        'AMQP__TLS_VERIFY: received "maybe"',
      );
    });

    it('never shows the passphrase in a configuration error', () => {
      const secret = 'Hunter2-passphrase';
      for (const env of [
        { AMQP__URL: 'amqp://localhost', AMQP__TLS_KEY_PASSPHRASE: secret },
        { AMQP__URL: URL, AMQP__TLS_KEY_PASSPHRASE: secret },
      ]) {
        const err = configError(() => loadMoAmqpOptionsFromEnv(env));
        expect(err.message).toContain('AMQP__TLS_KEY_PASSPHRASE: received ***');
        expect(err.message).not.toContain(secret);
        expect(JSON.stringify(err.problems)).not.toContain(secret);
      }
      const notAString = configError(() => resolveMoAmqpOptions({ tlsKeyPassphrase: 12345 as any }));
      expect(notAString.message).toContain('tlsKeyPassphrase: received ***');
      expect(notAString.message).not.toContain('12345');
    });
  });

  describe('tlsConnectionOptions', () => {
    it('is empty for amqp:// and for amqps:// with Node’s defaults', () => {
      expect(tlsConnectionOptions(resolveMoAmqpOptions({ url: 'amqp://localhost' }))).toEqual({});
      expect(tlsConnectionOptions(options())).toEqual({});
    });

    it('gives the CA, the certificate, the decrypted key and the EXTERNAL login', () => {
      const warn = jest.fn();
      const result = tlsConnectionOptions(
        options({
          tlsCaFile: files.ca,
          tlsCertFile: files.cert,
          tlsKeyFile: files.encryptedKey,
          tlsKeyPassphrase: files.passphrase,
          auth: 'external',
        }),
        warn,
      );
      expect(result.ca?.toString()).toContain('-----BEGIN CERTIFICATE-----');
      expect(result.cert?.toString()).toContain('-----BEGIN CERTIFICATE-----');
      expect(result.key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      expect(result.credentials?.mechanism).toBe('EXTERNAL');
      expect(result).not.toHaveProperty('rejectUnauthorized');
      expect(JSON.stringify(result)).not.toContain(files.passphrase);
      expect(warn).not.toHaveBeenCalled();
    });

    it('turns verification off only when told, with a warning', () => {
      const warn = jest.fn();
      expect(tlsConnectionOptions(options({ tlsVerify: false }), warn)).toEqual({ rejectUnauthorized: false });
      expect(warn).toHaveBeenCalledWith(TLS_VERIFY_OFF_WARNING);
      expect(TLS_VERIFY_OFF_WARNING).toContain('AMQP__TLS_VERIFY is false');
    });

    it('fails at once on a file it cannot read, naming the variable, the path and the error', () => {
      const missing = join(files.dir, 'nowhere', 'ca.pem');
      const err = configError(() => tlsConnectionOptions(options({ tlsCaFile: missing })));
      expect(err.message).toContain(`AMQP__TLS_CA_FILE (tlsCaFile): received "${missing}"`);
      expect(err.message).toContain('ENOENT: no such file or directory');
      const dir = join(files.dir, 'a-directory');
      mkdirSync(dir);
      const both = configError(() => tlsConnectionOptions(options({ tlsCertFile: dir, tlsKeyFile: missing })));
      expect(both.problems.map((p) => p.name)).toEqual([
        'AMQP__TLS_CERT_FILE (tlsCertFile)',
        'AMQP__TLS_KEY_FILE (tlsKeyFile)',
      ]);
      expect(both.message).toContain('EISDIR');
    });

    it('says what is wrong with a file that is not PEM, or a key that is not the certificate’s', () => {
      const text = join(files.dir, 'notes.txt');
      writeFileSync(text, 'not a certificate\n');
      expect(configError(() => tlsConnectionOptions(options({ tlsCaFile: text }))).message).toMatch(
        /AMQP__TLS_CA_FILE \(tlsCaFile\): received ".*notes\.txt"; allowed: a PEM file of CA certificates \(it holds no -----BEGIN CERTIFICATE----- block\)/,
      );
      expect(
        configError(() => tlsConnectionOptions(options({ tlsCertFile: text, tlsKeyFile: files.key }))).message,
      ).toContain('AMQP__TLS_CERT_FILE (tlsCertFile)');
      expect(
        configError(() => tlsConnectionOptions(options({ tlsCertFile: files.cert, tlsKeyFile: files.ca }))).message,
      ).toMatch(/AMQP__TLS_KEY_FILE \(tlsKeyFile\): .*a PEM file of a private key/);
      const mismatch = configError(() =>
        tlsConnectionOptions(options({ tlsCertFile: files.cert, tlsKeyFile: files.strangerKey })),
      );
      expect(mismatch.message).toContain(`the private key of the certificate in AMQP__TLS_CERT_FILE (${files.cert})`);
    });

    it('wants the passphrase of an encrypted key, and says when it is wrong without showing it', () => {
      const encrypted = { tlsCertFile: files.cert, tlsKeyFile: files.encryptedKey };
      expect(configError(() => tlsConnectionOptions(options(encrypted))).message).toContain(
        'its passphrase in AMQP__TLS_KEY_PASSPHRASE (it is encrypted)',
      );
      const wrong = `${files.passphrase}-wrong`;
      const err = configError(() => tlsConnectionOptions(options({ ...encrypted, tlsKeyPassphrase: wrong })));
      expect(err.message).toContain('AMQP__TLS_KEY_PASSPHRASE (tlsKeyPassphrase): received ***');
      expect(err.message).toContain('it does not decrypt it');
      expect(err.message).not.toContain(wrong);
      expect(err.message).not.toContain(files.passphrase);
    });
  });

  describe('explainTlsFailure', () => {
    const withCa = () => options({ tlsCaFile: files.ca });
    const withCert = () => options({ tlsCaFile: files.ca, tlsCertFile: files.cert, tlsKeyFile: files.key });

    it('names the CA file when the server’s certificate is not signed by its CAs', () => {
      for (const code of [
        'SELF_SIGNED_CERT_IN_CHAIN',
        'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
        'DEPTH_ZERO_SELF_SIGNED_CERT',
        'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
      ]) {
        const said = explainTlsFailure(failure('self-signed certificate in certificate chain', { code }), withCa());
        expect(said).toContain(`the server's certificate is not signed by a CA in AMQP__TLS_CA_FILE (${files.ca})`);
        expect(said).toContain(code);
      }
      expect(
        explainTlsFailure(failure('unable to verify the first certificate', { code: 'X' }), withCa()),
      ).toBeUndefined();
      expect(
        explainTlsFailure(
          failure('self-signed certificate in certificate chain', { code: 'SELF_SIGNED_CERT_IN_CHAIN' }),
          options(),
        ),
      ).toContain(
        'not signed by a CA Node trusts by default: set AMQP__TLS_CA_FILE to a PEM file of the CA that signed it',
      );
    });

    it('reads the same failures from their words alone', () => {
      // As a caller that only kept the (masked) message would pass it.
      expect(explainTlsFailure('self-signed certificate in certificate chain', withCa())).toContain(
        `not signed by a CA in AMQP__TLS_CA_FILE (${files.ca})`,
      );
      expect(explainTlsFailure(new Error('certificate has expired'), withCa())).toContain(
        'outside its validity period',
      );
      expect(
        explainTlsFailure(
          '802C:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../ssl/record/rec_layer_s3.c:1601:SSL alert number 48\n',
          withCert(),
        ),
      ).toContain(
        `the server refused the client certificate in AMQP__TLS_CERT_FILE (${files.cert}): the broker does not trust the CA`,
      );
    });

    it('explains expiry, a wrong host name and a port that does not speak TLS', () => {
      expect(explainTlsFailure(failure('certificate has expired', { code: 'CERT_HAS_EXPIRED' }), withCa())).toMatch(
        /^the server's certificate \(or a CA certificate of its chain\) is outside its validity period: renew it on the broker/,
      );
      const altname = failure(
        "Hostname/IP does not match certificate's altnames: Host: mq.example. is not in the cert's altnames: DNS:localhost",
        { code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
      );
      expect(explainTlsFailure(altname, withCa())).toContain(
        "the server's certificate is not made out to the host name in AMQP__URL",
      );
      expect(explainTlsFailure(altname, withCa())).toContain('Host: mq.example.');
      const plainPort = failure('error:0A00010B:SSL routines:ssl3_get_record:wrong version number', {
        code: 'ERR_SSL_WRONG_VERSION_NUMBER',
        reason: 'wrong version number',
      });
      expect(explainTlsFailure(plainPort, withCa())).toContain('the server did not answer in TLS');
      expect(explainTlsFailure(failure('x', { code: 'CERT_REVOKED' }), withCa())).toContain(
        `the server's certificate was not accepted: check it, and AMQP__TLS_CA_FILE (${files.ca})`,
      );
    });

    it('explains a refused client certificate, and a missing one', () => {
      const unknownCa = failure('…:tlsv1 alert unknown ca:…', {
        code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
        reason: 'tlsv1 alert unknown ca',
      });
      expect(explainTlsFailure(unknownCa, withCert())).toBe(
        `the server refused the client certificate in AMQP__TLS_CERT_FILE (${files.cert}): the broker does not trust ` +
          "the CA that signed it: add that CA to the broker's ssl_options.cacertfile, or use a certificate its CA signed " +
          '(tlsv1 alert unknown ca; ERR_SSL_TLSV1_ALERT_UNKNOWN_CA)',
      );
      expect(
        explainTlsFailure(
          failure('alert', {
            code: 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
            reason: 'sslv3 alert certificate expired',
          }),
          withCert(),
        ),
      ).toContain('it has expired: renew it');
      expect(
        explainTlsFailure(
          failure('alert', {
            code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
            reason: 'tlsv13 alert certificate required',
          }),
          withCa(),
        ),
      ).toContain('the server asks for a client certificate: set AMQP__TLS_CERT_FILE and AMQP__TLS_KEY_FILE');
      expect(explainTlsFailure(failure('x', { code: 'ERR_SSL_NO_PROTOCOLS_AVAILABLE' }), withCa())).toContain(
        'the TLS handshake with the server failed',
      );
    });

    it('explains a refused EXTERNAL login with the certificate’s CN and the rabbitmqctl lines', () => {
      const refused = failure(
        'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using ' +
          'authentication mechanism EXTERNAL. For details see the broker logfile."',
      );
      const said = explainTlsFailure(refused, options({ ...withCert(), auth: 'external' }));
      expect(said).toContain(
        `RabbitMQ refused the EXTERNAL login of the client certificate in AMQP__TLS_CERT_FILE (${files.cert})`,
      );
      expect(said).toContain(`CN "${files.user}"`);
      expect(said).toContain(`rabbitmqctl set_permissions -p / ${files.user} ".*" ".*" ".*"`);
      const inVhost = explainTlsFailure(refused, options({ ...withCert(), url: 'amqps://mq:5671/mo%20prod' }));
      expect(inVhost).toContain(`rabbitmqctl set_permissions -p 'mo prod' ${files.user} ".*"`);
      expect(
        explainTlsFailure(new Error('SASL mechanism EXTERNAL is not provided by the server'), withCert()),
      ).toContain('enable its rabbitmq_auth_mechanism_ssl plugin');
    });

    it('leaves every other failure to its caller', () => {
      for (const err of [
        failure('connect ECONNREFUSED 127.0.0.1:5691', { code: 'ECONNREFUSED' }),
        failure('read ECONNRESET', { code: 'ECONNRESET' }),
        new Error('connect ETIMEDOUT'),
        failure('getaddrinfo ENOTFOUND mq', { code: 'ENOTFOUND' }),
        new Error(
          'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN."',
        ),
        'Socket closed abruptly during opening handshake',
        undefined,
        null,
      ]) {
        expect(explainTlsFailure(err, withCert())).toBeUndefined();
      }
    });

    it('never says to start the broker, and never shows the passphrase', () => {
      const tlsOptions = options({
        tlsCaFile: files.ca,
        tlsCertFile: files.cert,
        tlsKeyFile: files.encryptedKey,
        tlsKeyPassphrase: files.passphrase,
      });
      for (const code of ['SELF_SIGNED_CERT_IN_CHAIN', 'CERT_HAS_EXPIRED', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA']) {
        const said = explainTlsFailure(failure(`failed near ${files.passphrase}`, { code }), tlsOptions);
        expect(said).toBeDefined();
        expect(said).not.toMatch(/start the broker/i);
        expect(said).not.toContain(files.passphrase);
      }
    });
  });
});
