import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import * as amqp from 'amqplib';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  MoAmqpConfigError,
  MoAmqpConnectionError,
  MoAmqpModuleOptions,
  MoEventMessage,
  MoEventSubscribe,
  MoEventsService,
  loadMoAmqpOptionsFromEnv,
} from '../../lib';
import { explainTlsFailure } from '../../lib/config/tls';
import { bootApp } from '../support/app';
import { uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { TLS_PORT, TLS_URL, TlsFiles, makeTlsFiles, startTlsBroker, stopTlsBroker, tlsCtl } from '../support/tls';
import { until } from '../support/until';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const run = promisify(execFile);
const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
/** The EXTERNAL login takes no user or password from the URL. */
const EXTERNAL_URL = `amqps://localhost:${TLS_PORT}`;

describe(`TLS to RabbitMQ (scripts/rabbitmq-tls.sh, amqps://localhost:${TLS_PORT})`, () => {
  let files: TlsFiles;
  let app: TestingModule | undefined;
  /** Everything the library and the CLI said in this file: the passphrase must be in none of it. */
  const seen: string[] = [];

  beforeAll(async () => {
    files = await makeTlsFiles();
    await startTlsBroker(files);
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await stopTlsBroker();
    files?.remove();
  }, 60_000);

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function boot(options: MoAmqpModuleOptions, extra: Parameters<typeof bootApp>[1] = {}) {
    const logger = new CapturingLogger();
    try {
      app = await bootApp({ enabled: true, exchange: uniqueName('tls'), ...options }, { logger, ...extra });
      return { app, logger };
    } finally {
      seen.push(logger.text);
    }
  }

  /** Boots and expects start-up to fail: the error and the time it took. */
  async function bootFails(options: MoAmqpModuleOptions): Promise<{ err: Error; ms: number }> {
    const started = Date.now();
    try {
      await boot(options);
    } catch (err) {
      seen.push(`${(err as Error).message}\n${(err as Error).stack}`);
      return { err: err as Error, ms: Date.now() - started };
    }
    throw new Error('start-up succeeded');
  }

  /** Runs `mo-amqp` to the end: its exit code and output. */
  async function cli(args: string[], env: Record<string, string>) {
    let result: { code: number; stdout: string; stderr: string };
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
        env: { ...process.env, ...env },
        timeout: 25_000,
      });
      result = { code: 0, stdout, stderr };
    } catch (err) {
      const failed = err as { code: number; stdout: string; stderr: string };
      result = { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
    seen.push(result.stdout, result.stderr);
    return result;
  }

  /** Starts `mo-amqp tail` and resolves once it says it is waiting. */
  async function startTail(env: Record<string, string>): Promise<{ child: ChildProcess; lines: string[] }> {
    const child = spawn(process.execPath, [CLI, 'tail', '--exchange', env.AMQP__EXCHANGE], {
      env: { ...process.env, ...env },
    });
    const lines: string[] = [];
    child.stdout.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('Waiting for messages')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`tail exited with ${code}: ${stderr}`)));
    });
    return { child, lines };
  }

  it('publishes (confirmed) and consumes over amqps:// with AMQP__TLS_CA_FILE', async () => {
    const queue = uniqueName('tls-consumer');
    const received: MoEventMessage[] = [];
    @Injectable()
    class Reader {
      @MoEventSubscribe({ queue, objectType: 'engagement' })
      async onEngagement(event: MoEventMessage) {
        received.push(event);
      }
    }
    const options = loadMoAmqpOptionsFromEnv({
      ENABLE_AMQP: 'true',
      AMQP__URL: TLS_URL,
      AMQP__TLS_CA_FILE: files.ca,
      AMQP__EXCHANGE: uniqueName('tls'),
    });
    const { app } = await boot(options, { providers: [Reader] });
    const result = await app.get(MoEventsService).publish('employee', 'engagement', 'create', UUID, {
      time: '2021-07-27T00:00:00+02:00',
    });
    expect(result.status).toBe('confirmed');
    await until(() => received.length === 1, 'the event, consumed over TLS');
    expect(received[0]).toMatchObject({ uuid: UUID, routingKey: 'employee.engagement.create' });
    // And it really is TLS: the broker has no plain listener at all.
    expect(await tlsCtl('list_connections', '-q', '--no-table-headers', 'ssl', 'user')).toMatch(/^true\s+guest$/m);
  });

  it('logs in by the client certificate (EXTERNAL), with an encrypted key and its passphrase', async () => {
    const { app, logger } = await boot({
      url: EXTERNAL_URL,
      auth: 'external',
      tlsCaFile: files.ca,
      tlsCertFile: files.cert,
      tlsKeyFile: files.encryptedKey,
      tlsKeyPassphrase: files.passphrase,
    });
    const result = await app.get(MoEventsService).publish('org_unit', 'address', 'update', UUID);
    expect(result.status).toBe('confirmed');
    const connections = await tlsCtl('list_connections', '-q', '--no-table-headers', 'user', 'auth_mechanism');
    expect(connections).toMatch(new RegExp(`^${files.user}\\s+EXTERNAL$`, 'm'));
    expect(logger.text).not.toContain(files.passphrase);
  });

  it('turns verification off with AMQP__TLS_VERIFY=false, warning at start', async () => {
    const { app, logger } = await boot(
      loadMoAmqpOptionsFromEnv({ ENABLE_AMQP: 'true', AMQP__URL: TLS_URL, AMQP__TLS_VERIFY: 'false' }),
    );
    expect((await app.get(MoEventsService).publish('employee', 'it', 'create', UUID)).status).toBe('confirmed');
    const warning = logger.lines.find((line) => line.startsWith('WARN') && line.includes('AMQP__TLS_VERIFY is false'));
    expect(warning).toContain("the broker's certificate is not verified");
    expect(warning).toContain('MoAmqpModule');
  });

  it('a wrong passphrase stops start-up before any connection, the passphrase shown as ***', async () => {
    const wrong = `${files.passphrase}-not`;
    const { err } = await bootFails({
      url: TLS_URL,
      tlsCaFile: files.ca,
      tlsCertFile: files.cert,
      tlsKeyFile: files.encryptedKey,
      tlsKeyPassphrase: wrong,
    });
    seen.push(err.message.split(wrong).join('(the wrong passphrase)'));
    expect(err).toBeInstanceOf(MoAmqpConfigError);
    expect(err.message).toContain('AMQP__TLS_KEY_PASSPHRASE (tlsKeyPassphrase): received ***');
    expect(err.message).toContain(files.encryptedKey);
    expect(err.message).not.toContain(wrong);
  });

  it('a missing CA file stops start-up at once, naming the variable, the path and ENOENT', async () => {
    const missing = join(files.dir, 'missing-ca.pem');
    const { err, ms } = await bootFails({ url: TLS_URL, tlsCaFile: missing, connectTimeoutMs: 20_000 });
    expect(err).toBeInstanceOf(MoAmqpConfigError);
    expect(err.message).toContain(`AMQP__TLS_CA_FILE (tlsCaFile): received "${missing}"`);
    expect(err.message).toContain('ENOENT');
    expect(ms).toBeLessThan(2_000);
  });

  // Needs MoEventsService's start-up wait to end on explainTlsFailure(); until then it
  // waits the whole connectTimeoutMs and says "Start the broker".
  it('a CA that did not sign the server’s certificate ends start-up at once, naming the CA file', async () => {
    const { err, ms } = await bootFails({ url: TLS_URL, tlsCaFile: files.otherCa, connectTimeoutMs: 20_000 });
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect(err.message).toContain(`AMQP__TLS_CA_FILE (${files.otherCa})`);
    expect(err.message).not.toContain('Start the broker');
    expect(ms).toBeLessThan(3_000);
  }, 40_000);

  it('explains what the broker and Node really say when TLS fails', async () => {
    const connectError = async (url: string, socketOptions: Record<string, unknown>) => {
      const error = await amqp.connect(url, { timeout: 5_000, ...socketOptions }).then(
        async (connection) => {
          await connection.close();
          return new Error('connected');
        },
        (err: Error) => err,
      );
      return error;
    };
    const ca = readFileSync(files.ca);
    const options = loadMoAmqpOptionsFromEnv({ AMQP__URL: TLS_URL, AMQP__TLS_CA_FILE: files.otherCa });
    expect(explainTlsFailure(await connectError(TLS_URL, { ca: readFileSync(files.otherCa) }), options)).toMatch(
      /^the server's certificate is not signed by a CA in AMQP__TLS_CA_FILE \(.*other-ca\.pem\): /,
    );

    const stranger = loadMoAmqpOptionsFromEnv({
      AMQP__URL: TLS_URL,
      AMQP__TLS_CA_FILE: files.ca,
      AMQP__TLS_CERT_FILE: files.strangerCert,
      AMQP__TLS_KEY_FILE: files.strangerKey,
    });
    const refusedCert = await connectError(TLS_URL, {
      ca,
      cert: readFileSync(files.strangerCert),
      key: readFileSync(files.strangerKey),
    });
    expect(explainTlsFailure(refusedCert, stranger)).toContain(
      `the server refused the client certificate in AMQP__TLS_CERT_FILE (${files.strangerCert}): the broker does not trust the CA`,
    );

    // A plain AMQP port answers a TLS hello with the AMQP protocol header, as RabbitMQ does.
    const sockets = new Set<net.Socket>();
    const plain = net.createServer((socket) => {
      sockets.add(socket);
      socket.end(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'));
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = plain.address() as net.AddressInfo;
      const plainPort = await connectError(`amqps://localhost:${port}`, { ca });
      expect(explainTlsFailure(plainPort, options)).toContain('the server did not answer in TLS');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => plain.close(resolve));
    }

    // The certificate's user gone: RabbitMQ refuses the EXTERNAL login.
    const external = loadMoAmqpOptionsFromEnv({
      AMQP__URL: EXTERNAL_URL,
      AMQP__AUTH: 'external',
      AMQP__TLS_CA_FILE: files.ca,
      AMQP__TLS_CERT_FILE: files.cert,
      AMQP__TLS_KEY_FILE: files.key,
    });
    await tlsCtl('delete_user', files.user);
    try {
      const refusedLogin = await connectError(EXTERNAL_URL, {
        ca,
        cert: readFileSync(files.cert),
        key: readFileSync(files.key),
        credentials: amqp.credentials.external(),
      });
      expect(explainTlsFailure(refusedLogin, external)).toContain(
        `RabbitMQ refused the EXTERNAL login of the client certificate in AMQP__TLS_CERT_FILE (${files.cert}): ` +
          `it logs in the user named as the certificate's subject (CN "${files.user}"`,
      );
    } finally {
      await tlsCtl('add_user', files.user, randomUUID());
      await tlsCtl('set_permissions', '-p', '/', files.user, '.*', '.*', '.*');
    }
  }, 30_000);

  describe('the mo-amqp command over TLS', () => {
    it('tail (CA file) prints what publish (EXTERNAL, encrypted key) sent', async () => {
      const exchange = uniqueName('tls-cli');
      const { child, lines } = await startTail({
        AMQP__URL: TLS_URL,
        AMQP__TLS_CA_FILE: files.ca,
        AMQP__EXCHANGE: exchange,
      });
      try {
        const uuid = randomUUID();
        const published = await cli(['publish', 'employee.engagement.create', uuid, '--time', '2021-07-27'], {
          AMQP__URL: EXTERNAL_URL,
          AMQP__AUTH: 'external',
          AMQP__TLS_CA_FILE: files.ca,
          AMQP__TLS_CERT_FILE: files.cert,
          AMQP__TLS_KEY_FILE: files.encryptedKey,
          AMQP__TLS_KEY_PASSPHRASE: files.passphrase,
          AMQP__EXCHANGE: exchange,
        });
        expect(published.code).toBe(0);
        // One line saying where it publishes: the URL without the passphrase or any file's content.
        expect(published.stderr).toMatch(
          /^mo-amqp publish: RabbitMQ at amqps:\/\/\S+ \(settings from the environment\)\n$/,
        );
        expect(published.stdout).toMatch(/^confirmed \[employee\.engagement\.create\]/);
        await until(() => lines.length === 1, 'the line from tail');
        expect(lines[0]).toBe(`[employee.engagement.create] {"uuid": "${uuid}", "time": "2021-07-27T00:00:00+00:00"}`);
      } finally {
        const exited = new Promise((resolve) => child.on('exit', resolve));
        child.kill('SIGINT');
        await exited;
      }
    });

    it('tail with a wrong CA exits 1 at once, naming AMQP__TLS_CA_FILE', async () => {
      const started = Date.now();
      const result = await cli(['tail'], {
        AMQP__URL: TLS_URL,
        AMQP__TLS_CA_FILE: files.otherCa,
        AMQP__CONNECT_TIMEOUT_MS: '20000',
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`not signed by a CA in AMQP__TLS_CA_FILE (${files.otherCa})`);
      expect(result.stderr).not.toContain('Start the broker');
      expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('refuses a bad TLS file with exit 2, and a wrong passphrase without showing it', async () => {
      const missing = await cli(['tail'], { AMQP__URL: TLS_URL, AMQP__TLS_CA_FILE: '/nonexistent/ca.pem' });
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('AMQP__TLS_CA_FILE (tlsCaFile): received "/nonexistent/ca.pem"');
      expect(missing.stderr).toContain('ENOENT');
      for (const command of [['tail'], ['publish', 'employee.it.create', UUID]]) {
        const wrong = await cli(command, {
          AMQP__URL: TLS_URL,
          AMQP__TLS_CA_FILE: files.ca,
          AMQP__TLS_CERT_FILE: files.cert,
          AMQP__TLS_KEY_FILE: files.encryptedKey,
          AMQP__TLS_KEY_PASSPHRASE: 'Wrong-Passphrase-42',
        });
        expect(wrong.code).toBe(2);
        expect(wrong.stderr).toContain('AMQP__TLS_KEY_PASSPHRASE (tlsKeyPassphrase): received ***');
        expect(wrong.stdout + wrong.stderr).not.toContain('Wrong-Passphrase-42');
      }
    });

    it('warns on stderr when verification is off', async () => {
      const result = await cli(['publish', 'employee.it.create', UUID], {
        AMQP__URL: TLS_URL,
        AMQP__TLS_VERIFY: 'false',
      });
      expect(result.code).toBe(0);
      expect(result.stderr).toContain('mo-amqp publish: warning: AMQP__TLS_VERIFY is false');
    });
  });

  it('never showed the passphrase anywhere', () => {
    expect(seen.length).toBeGreaterThan(5);
    for (const text of seen) expect(text).not.toContain(files.passphrase);
  });
});
