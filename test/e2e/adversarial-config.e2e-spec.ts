import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  MoAmqpConfigError,
  MoAmqpConnectionError,
  MoEventsService,
  MoPublishError,
  loadMoAmqpOptionsFromEnv,
} from '../../lib';
import { DiskSpool } from '../../lib/spool/disk-spool';
import { bootApp } from '../support/app';
import { BROKER_URL, TcpProxy, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';
import { addUserReadingPassword, rabbitmqctl } from '../support/rabbitmqctl';
import { until } from '../support/until';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');
const run = promisify(execFile);
const UUID = 'c390b9a2-7202-48e6-972b-ce36a90065c4';
const broker = new URL(BROKER_URL);
const HOST = `${broker.hostname}:${broker.port || 5672}`;

/** Every printable ASCII character that is not a letter or digit, and some that are not ASCII. */
const SPECIALS = [...` !"#$%&'()*+,-./:;<=>?@[\\]^_\`{|}~`, 'æ', 'ø', '€'];

/** A password with `special` between two random runs, so any four characters of it are its own. */
/**
 * Random runs of rare letters around the special character: base64 runs once held "pCon",
 * which the words of any error text ("AmqpConnection") contain, and the leak check failed
 * on a password that never leaked. No four of these letters in a row stand in any output.
 */
const RARE = 'QXZJKVWqxzjkvw';

function passwordWith(special: string): string {
  const run = () => Array.from(randomBytes(6), (byte) => RARE[byte % RARE.length]).join('');
  return `${run()}${special}${run()}`;
}

/** The password, or any four or more characters of it in a row, found in `text`. */
function leak(text: string, password: string): string | undefined {
  for (let length = password.length; length >= 4; length--) {
    for (let start = 0; start + length <= password.length; start++) {
      const fragment = password.slice(start, start + length);
      if (text.includes(fragment)) return fragment;
    }
  }
  return undefined;
}

function everything(err: unknown, logger: CapturingLogger): string {
  const e = err as Error & { problems?: unknown };
  return `${e?.message}\n${e?.stack}\n${JSON.stringify(e?.problems ?? '')}\n${logger.text}`;
}

async function cli(args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      timeout: 20_000,
    });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, out: failed.stdout + failed.stderr };
  }
}

describe('passwords never reach any output', () => {
  // Written into the URL as it is (most of these break the URL) and percent-encoded (always valid).
  it.each(SPECIALS.map((c) => [JSON.stringify(c), c]))(
    'a password with %s: refused or failing login, fast, without a fragment of it',
    async (_name, special) => {
      const password = passwordWith(special);
      for (const written of [password, encodeURIComponent(password)]) {
        const url = `amqp://guest:${written}@${HOST}/`;
        const logger = new CapturingLogger();
        const started = Date.now();
        const err = await bootApp({ enabled: true, url, connectTimeoutMs: 15_000 }, { logger }).catch((e) => e);
        expect(Date.now() - started).toBeLessThan(5_000); // never the whole connect timeout
        if (err instanceof MoAmqpConfigError) {
          expect(err.message).toContain('must be percent-encoded');
          expect(written).toBe(password); // only the unencoded form is refused as a URL
        } else {
          expect(err).toBeInstanceOf(MoAmqpConnectionError);
          expect(err.message).toContain('refused the login of user "guest"');
        }
        expect(leak(everything(err, logger), password)).toBeUndefined();
        // The same value read from the environment, and as the second URL of a cluster list.
        for (const AMQP__URL of [url, `amqp://${HOST}, ${url}`]) {
          const fromEnv = (() => {
            try {
              return loadMoAmqpOptionsFromEnv({ AMQP__URL });
            } catch (e) {
              return e;
            }
          })();
          if (fromEnv instanceof Error) expect(leak(everything(fromEnv, logger), password)).toBeUndefined();
        }
      }
    },
  );

  describe('a real user whose password holds every special character', () => {
    // ASCII only: rabbitmqctl reads other characters of a password in another encoding. A letter
    // after each, so no four characters of it are also four of the error's own text ("$&'()*+").
    const password = `Zq8Rt${SPECIALS.filter((c) => c < '\x7f')
      .map((c, i) => `${c}${String.fromCharCode(97 + (i % 26))}`)
      .join('')}Wv3Kp`;
    const user = uniqueName('pw-user');
    const url = `amqp://${user}:${encodeURIComponent(password)}@${HOST}/`;

    beforeAll(async () => {
      await addUserReadingPassword(user, password);
      await rabbitmqctl('set_permissions', '-p', '/', user, '.*', '.*', '.*');
    }, 60_000);

    afterAll(async () => {
      await rabbitmqctl('delete_user', user).catch(() => undefined);
    }, 60_000);

    it('boots, publishes, reconnects, spools and fails with no fragment of it anywhere', async () => {
      const proxy = await TcpProxy.start();
      const proxied = url.replace(HOST, `127.0.0.1:${proxy.port}`);
      const logger = new CapturingLogger();
      const exchange = uniqueName('pw');
      const app = await bootApp({ enabled: true, url: proxied, exchange, publishTimeoutMs: 1_000 }, { logger });
      const errors: unknown[] = [];
      try {
        const events = app.get(MoEventsService);
        expect((await events.publish('employee', 'it', 'create', UUID)).status).toBe('confirmed');
        // A dropped connection: golevelup and the library log the disconnect and the reconnect.
        proxy.dropConnections();
        await until(() => !events.connected, 'the connection to drop');
        await until(() => events.connected, 'the reconnect', 15_000);
        expect((await events.publish('employee', 'it', 'create', UUID)).status).toBe('confirmed');
        proxy.block();
        await until(() => !events.connected, 'the connection to drop');
        expect((await events.publish('employee', 'it', 'create', UUID)).status).toBe('spooled');
      } finally {
        await app.close();
      }
      // Without a spool, a publish that cannot be confirmed fails: its error too.
      const noSpool = await bootApp(
        { enabled: true, url: proxied, exchange, publishTimeoutMs: 500, spoolDir: 'off', connectTimeoutMs: 1_500 },
        { logger },
      ).catch((e) => e);
      errors.push(noSpool);
      proxy.unblock();
      const app2 = await bootApp(
        { enabled: true, url: proxied, exchange, publishTimeoutMs: 500, spoolDir: 'off' },
        { logger },
      );
      try {
        proxy.pause(); // the broker hangs: the confirm never comes
        errors.push(
          await app2
            .get(MoEventsService)
            .publish('employee', 'it', 'create', UUID)
            .catch((e) => e),
        );
        expect(errors[1]).toBeInstanceOf(MoPublishError);
      } finally {
        proxy.resume();
        await app2.close();
        await proxy.close();
      }
      const broker = await TestBroker.connect();
      await broker.channel.deleteExchange(exchange).catch(() => undefined);
      await broker.close();
      expect(logger.text).toContain('Disconnected from RabbitMQ broker');
      const output = errors.map((e) => everything(e, logger)).join('\n');
      expect(leak(output, password)).toBeUndefined();
    }, 60_000);

    it('the CLI publishes with it, and fails without showing it', async () => {
      const exchange = uniqueName('pw-cli');
      const ok = await cli(['publish', 'employee.it.create', randomUUID(), '--exchange', exchange], {
        AMQP__URL: url,
      });
      expect(ok.code).toBe(0);
      const wrong = await cli(['publish', 'employee.it.create', randomUUID()], {
        AMQP__URL: `amqp://${user}:${encodeURIComponent(password.slice(1))}@${HOST}/`,
      });
      expect(wrong.code).not.toBe(0);
      const raw = await cli(['publish', 'employee.it.create', randomUUID()], {
        AMQP__URL: `amqp://${user}:${password}@${HOST}/`,
      });
      expect(raw.code).not.toBe(0);
      expect(raw.out).toContain('must be percent-encoded');
      const tail = await cli(['tail', '--exchange', exchange], {
        AMQP__URL: `amqp://${user}:${encodeURIComponent(password.slice(1))}@${HOST}/`,
      });
      expect(tail.code).not.toBe(0);
      for (const { out } of [ok, wrong, raw, tail]) expect(leak(out, password)).toBeUndefined();
      const broker = await TestBroker.connect();
      await broker.channel.deleteExchange(exchange).catch(() => undefined);
      await broker.close();
    }, 60_000);
  });
});

describe('start-up names the cause at once', () => {
  it('an unknown vhost: fails within a second, naming it, not "start the broker"', async () => {
    const vhost = uniqueName('vhost');
    const logger = new CapturingLogger();
    const started = Date.now();
    const err = await bootApp(
      { enabled: true, url: `amqp://${HOST}/${encodeURIComponent(vhost)}`, connectTimeoutMs: 15_000 },
      { logger },
    ).catch((e) => e);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(err).toBeInstanceOf(MoAmqpConnectionError);
    expect(err.message).toContain(`would not open virtual host "${vhost}" for user "guest"`);
    expect(err.message).toContain(`rabbitmqctl add_vhost ${vhost}`);
    expect(err.message).not.toMatch(/start the broker/i);
  });

  it('a malformed URL: a configuration error, before anything connects', async () => {
    for (const url of ['amqp://guest:ab%zz@localhost', 'amqp://guest:a b@localhost', 'amqp://guest:a#b@localhost']) {
      const err = await bootApp({ enabled: true, url }).catch((e) => e);
      expect(err).toBeInstanceOf(MoAmqpConfigError);
      expect(err.message).toContain('url: received "amqp://***@localhost"');
    }
  });

  it('a spool directory the file system refuses (under /proc): a configuration error, fast, not a hang', async () => {
    const started = Date.now();
    const err = await bootApp({ enabled: true, url: BROKER_URL, spoolDir: '/proc/mo-amqp-nope' }).catch((e) => e);
    expect(err).toBeInstanceOf(MoAmqpConfigError);
    expect(err.message).toContain('AMQP__SPOOL_DIR (spoolDir): received "/proc/mo-amqp-nope"');
    expect(err.message).toContain('ENOENT');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('a failed start', () => {
  it('leaves nothing running: the process ends by itself within seconds, nothing of the spool lost', async () => {
    const COUNT = 20_000;
    const spoolDir = mkdtempSync(join(tmpdir(), 'failed-start-'));
    const broker = await TestBroker.connect();
    const exchange = uniqueName('failed-start');
    const collector = await broker.collect(exchange);
    // What a process that is gone left: events waiting to be sent.
    const left = new DiskSpool(join(spoolDir, 'make'), 100_000_000);
    await Promise.all(
      Array.from({ length: COUNT }, (_, i) =>
        left.append({
          exchange,
          routingKey: 'employee.it.create',
          content: Buffer.from(`{"uuid": "${UUID}", "time": "2021-07-27"}`),
          properties: { persistent: true, messageId: `left-${i}` },
        }),
      ),
    );
    await left.close();
    const [made] = readdirSync(join(spoolDir, 'make'));
    renameSync(join(spoolDir, 'make', made), join(spoolDir, '999999-gone'));
    rmSync(join(spoolDir, 'make'), { recursive: true });

    const queue = uniqueName('taken');
    broker.trackQueue(queue);
    await broker.channel.assertQueue(queue, { durable: true }); // no dead-letter arguments: a conflict
    const child = spawn(process.execPath, [join(__dirname, '..', 'fixtures', 'failed-start.js')], {
      env: {
        ...process.env,
        ENABLE_AMQP: 'true',
        AMQP__URL: BROKER_URL,
        AMQP__EXCHANGE: exchange,
        AMQP__SPOOL_DIR: spoolDir,
        MO_TEST_QUEUE: queue,
      },
    });
    let out = '';
    let failedAt = 0;
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('failed') && !failedAt) failedAt = Date.now();
    });
    let exitCode: number | null = null;
    const exitedAt = await new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 25_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        exitCode = code;
        resolve(Date.now());
      });
    });
    if (exitedAt === undefined) child.kill('SIGKILL');
    expect(out).toContain('failed MoAmqpConnectionError');
    expect(exitedAt).toBeDefined();
    expect(exitCode).toBe(0); // it ran out of work, it did not crash
    expect((exitedAt as number) - failedAt).toBeLessThan(5_000);
    // Every event either reached the broker or is still in the spool for the next start.
    const reader = new DiskSpool(spoolDir, 100_000_000);
    const kept: string[] = [];
    for (const file of await reader.takeSegments()) {
      kept.push(...(await reader.readSegment(file)).map((r) => String(r.properties.messageId)));
    }
    await reader.close();
    await new Promise((resolve) => setTimeout(resolve, 500)); // the last deliveries on their way
    const seen = new Set([...collector.messages.map((m) => String(m.properties.messageId)), ...kept]);
    expect(seen.size).toBe(COUNT);
    expect(kept.length).toBeGreaterThan(0); // the failure came while the spool still held events
    await broker.close();
    rmSync(spoolDir, { recursive: true, force: true });
  }, 60_000);
});
