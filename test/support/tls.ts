import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKER } from './broker';

const SCRIPT = join(__dirname, '..', '..', 'scripts', 'rabbitmq-tls.sh');

/** The TLS node of scripts/rabbitmq-tls.sh (of the BROKER version): TLS only, on loopback. */
export const TLS_PORT = BROKER.tlsPort;
/** Its address by the name its certificate is made out to; guest may log in from loopback. */
export const TLS_URL = `amqps://guest:guest@localhost:${TLS_PORT}`;

/** A set of test certificates (scripts/rabbitmq-tls.sh certs) in a temporary directory of their own. */
export interface TlsFiles {
  readonly dir: string;
  /** The CA that signed the server's and the client's certificates. */
  readonly ca: string;
  /** A CA that signed neither. */
  readonly otherCa: string;
  /** The client certificate; its CN is `user`. */
  readonly cert: string;
  readonly key: string;
  /** `key`, encrypted with `passphrase`. */
  readonly encryptedKey: string;
  readonly passphrase: string;
  /** A client certificate of the same CN that the other CA signed: the broker refuses it. */
  readonly strangerCert: string;
  readonly strangerKey: string;
  /** The CN of the client certificates, a user of the TLS node once it runs. */
  readonly user: string;
  /** Deletes the directory. */
  remove(): void;
}

function script(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('bash', [SCRIPT, ...args], { timeout: 120_000, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      err ? reject(new Error(`rabbitmq-tls.sh ${args[0]} failed: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

/** Makes the certificates (openssl, well under a second). */
export async function makeTlsFiles(): Promise<TlsFiles> {
  const dir = mkdtempSync(join(tmpdir(), 'mo-amqp-tls-'));
  const user = `mo-amqp-tls-${process.pid}-${randomBytes(3).toString('hex')}`;
  // Characters a shell or a URL would mangle, so a test shows they arrive whole.
  const passphrase = `pass ${randomBytes(9).toString('base64url')} $&"'`;
  await script(['certs', dir, user], { MO_TLS_KEY_PASSPHRASE: passphrase });
  const at = (name: string) => join(dir, name);
  return {
    dir,
    ca: at('ca.pem'),
    otherCa: at('other-ca.pem'),
    cert: at('client.pem'),
    key: at('client.key'),
    encryptedKey: at('client-encrypted.key'),
    passphrase,
    strangerCert: at('stranger.pem'),
    strangerKey: at('stranger.key'),
    user,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** rabbitmqctl against the TLS node. */
export function tlsCtl(...args: string[]): Promise<string> {
  return script(['ctl', ...args]);
}

/**
 * Starts the TLS node with these certificates (restarting it if it runs) and
 * adds the certificates' user, with every permission on "/", for the EXTERNAL login.
 */
export async function startTlsBroker(files: TlsFiles): Promise<void> {
  await script(['start', files.dir]);
  await tlsCtl('add_user', files.user, randomBytes(12).toString('hex'));
  await tlsCtl('set_permissions', '-p', '/', files.user, '.*', '.*', '.*');
}

/** Stops the TLS node and deletes its data. */
export async function stopTlsBroker(): Promise<void> {
  await script(['stop']);
}
