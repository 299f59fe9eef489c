import { MoAmqpConfigError, loadMoAmqpOptionsFromEnv } from '../../lib';
import { brokerUrlsOf, resolveMoAmqpOptions } from '../../lib/config/mo-amqp-options.schema';

function configError(fn: () => unknown): MoAmqpConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MoAmqpConfigError);
    return err as MoAmqpConfigError;
  }
  throw new Error('expected a MoAmqpConfigError');
}

describe('configuration from the environment', () => {
  it('has the seed’s defaults: off, exchange os2mo, localhost:5672', () => {
    expect(loadMoAmqpOptionsFromEnv({})).toEqual({
      enabled: false,
      exchange: 'os2mo',
      delayedExchange: 'os2mo_delayed',
      exchangeDurable: true,
      declareExchanges: true,
      vocabulary: 'seed',
      host: 'localhost',
      port: 5672,
      url: undefined,
      timeZone: 'UTC',
      publishTimeoutMs: 10_000,
      connectTimeoutMs: 10_000,
      startWithoutBroker: 'auto',
      maxInFlight: 10_000,
      eventFailures: 'log',
      spoolDir: '.mo-amqp-spool',
      spoolMaxBytes: 104_857_600,
      shutdownTimeoutMs: 5_000,
      tlsCaFile: undefined,
      tlsCertFile: undefined,
      tlsKeyFile: undefined,
      tlsKeyPassphrase: undefined,
      tlsVerify: true,
      auth: 'plain',
      outbox: 'off',
      outboxUrl: undefined,
      outboxTable: 'mo_amqp_outbox',
      outboxRelay: true,
      outboxConnection: undefined,
    });
  });

  it.each([
    ['True', true],
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['yes', true],
    ['Yes', true],
    ['False', false],
    ['0', false],
    ['no', false],
    ['NO', false],
    [' true ', true],
    ['', false],
  ])('reads ENABLE_AMQP=%p as %p', (value, expected) => {
    expect(loadMoAmqpOptionsFromEnv({ ENABLE_AMQP: value }).enabled).toBe(expected);
  });

  it('reads every variable', () => {
    const options = loadMoAmqpOptionsFromEnv({
      ENABLE_AMQP: 'yes',
      AMQP__EXCHANGE: 'mo-events',
      AMQP__DELAYED_EXCHANGE: 'mo-events-delayed',
      AMQP__EXCHANGE_DURABLE: 'false',
      AMQP__DECLARE_EXCHANGES: 'no',
      AMQP__VOCABULARY: 'os2mo',
      AMQP__HOST: 'rabbit_mq',
      AMQP__PORT: '5673',
      AMQP__URL: 'amqps://user:p%40ss@broker.example:5671/mo',
      AMQP__TIME_ZONE: 'Europe/Copenhagen',
      AMQP__PUBLISH_TIMEOUT_MS: '2500',
      AMQP__CONNECT_TIMEOUT_MS: '30000',
      AMQP__START_WITHOUT_BROKER: 'false',
      AMQP__MAX_IN_FLIGHT: '50',
      AMQP__EVENT_FAILURES: 'throw',
      AMQP__SPOOL_DIR: '/var/spool/mo',
      AMQP__SPOOL_MAX_BYTES: '2048',
      AMQP__SHUTDOWN_TIMEOUT_MS: '0',
      AMQP__TLS_CA_FILE: '/etc/mo/ca.pem',
      AMQP__TLS_CERT_FILE: '/etc/mo/client.pem',
      AMQP__TLS_KEY_FILE: '/etc/mo/client.key',
      AMQP__TLS_KEY_PASSPHRASE: 'key secret',
      AMQP__TLS_VERIFY: 'no',
      AMQP__AUTH: 'external',
      AMQP__OUTBOX: 'postgres',
      AMQP__OUTBOX_URL: 'postgres://app:db%40pw@db.example:5432/mo',
      AMQP__OUTBOX_TABLE: 'events.mo_outbox',
      AMQP__OUTBOX_RELAY: 'false',
      AMQP__OUTBOX_CONNECTION: 'mo-db',
    });
    expect(options).toEqual({
      enabled: true,
      exchange: 'mo-events',
      delayedExchange: 'mo-events-delayed',
      exchangeDurable: false,
      declareExchanges: false,
      vocabulary: 'os2mo',
      host: 'rabbit_mq',
      port: 5673,
      url: 'amqps://user:p%40ss@broker.example:5671/mo',
      timeZone: 'Europe/Copenhagen',
      publishTimeoutMs: 2500,
      connectTimeoutMs: 30_000,
      startWithoutBroker: 'false',
      maxInFlight: 50,
      eventFailures: 'throw',
      spoolDir: '/var/spool/mo',
      spoolMaxBytes: 2048,
      shutdownTimeoutMs: 0,
      tlsCaFile: '/etc/mo/ca.pem',
      tlsCertFile: '/etc/mo/client.pem',
      tlsKeyFile: '/etc/mo/client.key',
      tlsKeyPassphrase: 'key secret',
      tlsVerify: false,
      auth: 'external',
      outbox: 'postgres',
      outboxUrl: 'postgres://app:db%40pw@db.example:5432/mo',
      outboxTable: 'events.mo_outbox',
      outboxRelay: false,
      outboxConnection: 'mo-db',
    });
  });

  it.each([
    ['ENABLE_AMQP', 'maybe', 'true, false, 1, 0, yes or no'],
    ['ENABLE_AMQP', 'on', 'true, false, 1, 0, yes or no'],
    ['AMQP__EXCHANGE', 'amq.topic', 'not starting with "amq."'],
    ['AMQP__EXCHANGE', 'has space', '1-255 letters'],
    ['AMQP__EXCHANGE', 'x'.repeat(256), '1-255 letters'],
    ['AMQP__DELAYED_EXCHANGE', 'amq.delayed', 'not starting with "amq."'],
    ['AMQP__HOST', 'http://rabbit', 'a host name or IP address'],
    ['AMQP__HOST', 'user@rabbit', 'a host name or IP address'],
    ['AMQP__PORT', '0', 'a whole number from 1 to 65535'],
    ['AMQP__PORT', '65536', 'a whole number from 1 to 65535'],
    ['AMQP__PORT', '56 72', 'a whole number from 1 to 65535'],
    ['AMQP__PORT', '5672.5', 'a whole number from 1 to 65535'],
    ['AMQP__PORT', '-1', 'a whole number from 1 to 65535'],
    ['AMQP__URL', 'http://localhost:5672', 'an amqp:// or amqps:// URL'],
    ['AMQP__URL', 'localhost:5672', 'an amqp:// or amqps:// URL'],
    ['AMQP__URL', 'amqp://', 'an amqp:// or amqps:// URL'],
    ['AMQP__URL', 'amqp://host/a/b', 'an amqp:// or amqps:// URL'],
    ['AMQP__TIME_ZONE', 'Europe/Kobenhavn', 'an IANA time zone'],
    ['AMQP__TIME_ZONE', '+02:00', 'an IANA time zone'],
    // Node 22 and 24 take these as time zones, Node 20 does not: refused on each.
    ['AMQP__TIME_ZONE', '-05:00', 'an IANA time zone'],
    ['AMQP__TIME_ZONE', '+0200', 'an IANA time zone'],
    ['AMQP__TIME_ZONE', '\u221202:00', 'an IANA time zone'],
    ['AMQP__PUBLISH_TIMEOUT_MS', '10s', 'a whole number of milliseconds'],
    ['AMQP__PUBLISH_TIMEOUT_MS', '0', 'a whole number of milliseconds'],
    ['AMQP__CONNECT_TIMEOUT_MS', '9999999999', 'a whole number of milliseconds'],
    ['AMQP__MAX_IN_FLIGHT', '0', 'a whole number from 1 up'],
    ['AMQP__START_WITHOUT_BROKER', 'yes', 'auto (start while RabbitMQ is unreachable'],
    ['AMQP__START_WITHOUT_BROKER', 'AUTO', 'true (always) or false'],
    ['AMQP__EVENT_FAILURES', 'ignore', 'log or throw'],
    ['AMQP__VOCABULARY', 'OS2mo', 'seed or os2mo'],
    ['AMQP__VOCABULARY', 'ramqp', 'seed or os2mo'],
    ['AMQP__EXCHANGE_DURABLE', 'nondurable', 'true, false'],
    ['AMQP__DECLARE_EXCHANGES', 'passive', 'true, false'],
    ['AMQP__SPOOL_MAX_BYTES', '10', 'a whole number of bytes from 1024 up'],
    ['AMQP__SHUTDOWN_TIMEOUT_MS', 'soon', 'a whole number of milliseconds'],
    ['AMQP__OUTBOX', 'mysql', 'off, or postgres'],
    ['AMQP__OUTBOX_URL', 'mysql://db/mo', 'a postgres:// URL'],
    ['AMQP__OUTBOX_URL', 'postgres://', 'a postgres:// URL'],
    ['AMQP__OUTBOX_TABLE', 'Outbox', 'a lower-case SQL name'],
    ['AMQP__OUTBOX_TABLE', 'outbox; drop table x', 'a lower-case SQL name'],
    ['AMQP__OUTBOX_TABLE', 'a.b.c', 'a lower-case SQL name'],
    ['AMQP__OUTBOX_TABLE', 'x'.repeat(64), 'a lower-case SQL name'],
    ['AMQP__OUTBOX_RELAY', 'sometimes', 'true, false, 1, 0, yes or no'],
  ])('rejects %s=%p, naming the variable, the value and what is allowed', (name, value, allowed) => {
    const err = configError(() => loadMoAmqpOptionsFromEnv({ [name]: value }));
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0].name).toBe(name);
    expect(err.problems[0].allowed).toContain(allowed);
    expect(err.message).toContain(`${name}: received `);
    expect(err.message).toContain(allowed);
  });

  it('names the field, the value and the allowed values of a bad startWithoutBroker', () => {
    expect(loadMoAmqpOptionsFromEnv({ AMQP__START_WITHOUT_BROKER: 'true' }).startWithoutBroker).toBe('true');
    expect(loadMoAmqpOptionsFromEnv({ AMQP__START_WITHOUT_BROKER: '' }).startWithoutBroker).toBe('auto');
    const err = configError(() => resolveMoAmqpOptions({ startWithoutBroker: 'sometimes' } as never));
    expect(err.message).toBe(
      'Invalid AMQP configuration:\n' +
        '  - startWithoutBroker: received "sometimes"; allowed: auto (start while RabbitMQ is unreachable when the ' +
        'spool or the outbox holds the events), true (always) or false (wait for it, and fail after the connect timeout)',
    );
    // A boolean is not one of the words: said so, not read as one.
    expect(configError(() => resolveMoAmqpOptions({ startWithoutBroker: true } as never)).message).toContain(
      'startWithoutBroker: received true; allowed: auto',
    );
  });

  it('lists every bad variable in one error', () => {
    const err = configError(() =>
      loadMoAmqpOptionsFromEnv({ ENABLE_AMQP: 'maybe', AMQP__PORT: 'x', AMQP__EXCHANGE: '' }),
    );
    expect(err.problems.map((p) => p.name)).toEqual(['ENABLE_AMQP', 'AMQP__PORT']);
    expect(err.message).toBe(
      'Invalid AMQP configuration:\n' +
        '  - ENABLE_AMQP: received "maybe"; allowed: true, false, 1, 0, yes or no (any case)\n' +
        '  - AMQP__PORT: received "x"; allowed: a whole number from 1 to 65535',
    );
  });

  it('never shows the password of a bad AMQP__URL', () => {
    for (const url of [
      'amqp://admin:Hunter2-secret@rabbit:99999',
      'amqp://admin:Hunter2-secret@',
      'http://admin:Hunter2-secret@rabbit',
    ]) {
      const err = configError(() => loadMoAmqpOptionsFromEnv({ AMQP__URL: url }));
      expect(err.message).not.toContain('Hunter2-secret');
      expect(err.message).toContain('://***@');
      expect(JSON.stringify(err.problems)).not.toContain('Hunter2-secret');
    }
  });

  it('never shows the password of a bad AMQP__OUTBOX_URL, and asks for one with AMQP__OUTBOX=postgres', () => {
    for (const url of ['mysql://admin:Hunter2-secret@db/mo', 'postgres://admin:Hunter2-secret@:5432/mo']) {
      const err = configError(() => loadMoAmqpOptionsFromEnv({ AMQP__OUTBOX: 'postgres', AMQP__OUTBOX_URL: url }));
      expect(err.problems.map((p) => p.name)).toEqual(['AMQP__OUTBOX_URL']);
      expect(JSON.stringify(err.problems)).not.toContain('Hunter2');
      expect(err.message).not.toContain('Hunter2');
    }
    const missing = configError(() => loadMoAmqpOptionsFromEnv({ AMQP__OUTBOX: 'postgres' }));
    expect(missing.message).toContain('AMQP__OUTBOX_URL: received undefined');
    expect(missing.message).toContain('required when AMQP__OUTBOX is postgres');
  });

  it("checks the URL's maxFrameSize as amqplib 2.3 does, and against frameMax", () => {
    const ok = ['', '?maxFrameSize=0', '?maxFrameSize=131072', '?maxFrameSize=67108864&heartbeat=5'];
    for (const query of [...ok, '?frameMax=8192&maxFrameSize=8192', '?frameMax=0&maxFrameSize=4096']) {
      expect(loadMoAmqpOptionsFromEnv({ AMQP__URL: `amqp://u:p@rabbit/${query}` }).url).toContain(query);
    }
    const bad = ['maxFrameSize=abc', 'maxFrameSize=100', 'maxFrameSize=-1', 'maxFrameSize=', 'maxFrameSize=65536'];
    for (const query of bad) {
      const err = configError(() =>
        loadMoAmqpOptionsFromEnv({ AMQP__URL: `amqp://u:Hunter2-secret@mq1/,amqp://u:Hunter2-secret@mq2/?${query}` }),
      );
      expect(err.problems).toEqual([
        {
          name: 'AMQP__URL',
          received: `"amqp://u:***@mq2/?${query}"`,
          allowed:
            "maxFrameSize=0 (no limit) or a whole number of bytes from 4096 up, and not below frameMax (131072, amqplib's default): " +
            'the largest frame RabbitMQ may send',
        },
      ]);
    }
    const err = configError(() => resolveMoAmqpOptions({ url: 'amqp://rabbit/?frameMax=262144&maxFrameSize=131072' }));
    expect(err.problems.map((p) => [p.name, p.allowed])).toEqual([
      ['url', expect.stringContaining('not below frameMax (262144)')],
    ]);
  });

  it('spells UTC one way', () => {
    expect(loadMoAmqpOptionsFromEnv({ AMQP__TIME_ZONE: 'Etc/UTC' }).timeZone).toBe('UTC');
    expect(loadMoAmqpOptionsFromEnv({ AMQP__TIME_ZONE: 'utc' }).timeZone).toBe('UTC');
  });
});

describe('options given in code', () => {
  it('names the option, not the variable', () => {
    const err = configError(() => resolveMoAmqpOptions({ port: 70_000 }));
    expect(err.message).toBe(
      'Invalid AMQP configuration:\n  - port: received 70000; allowed: a whole number from 1 to 65535',
    );
  });

  it('rejects an option it does not know, so a typo is not silently ignored', () => {
    const err = configError(() => resolveMoAmqpOptions({ exchnage: 'x' } as never));
    expect(err.problems[0]).toMatchObject({
      name: 'exchnage',
      allowed: expect.stringContaining('enabled, exchange, delayedExchange, exchangeDurable'),
    });
  });

  it('rejects values of the wrong type from JavaScript callers', () => {
    const err = configError(() => resolveMoAmqpOptions({ enabled: 'true', port: '5672' } as never));
    expect(err.problems.map((p) => p.name)).toEqual(['enabled', 'port']);
  });

  it('accepts its own output again', () => {
    const resolved = loadMoAmqpOptionsFromEnv({ ENABLE_AMQP: '1' });
    expect(resolveMoAmqpOptions(resolved)).toEqual(resolved);
  });
});

describe('brokerUrlsOf', () => {
  it('prefers the URL, else builds one from host and port', () => {
    expect(brokerUrlsOf(resolveMoAmqpOptions({ url: 'amqp://u:p@h:1/v', host: 'other' }))).toEqual([
      'amqp://u:p@h:1/v',
    ]);
    expect(brokerUrlsOf(resolveMoAmqpOptions({ host: 'rabbit', port: 5673 }))).toEqual(['amqp://rabbit:5673']);
    expect(brokerUrlsOf(resolveMoAmqpOptions({ host: '::1' }))).toEqual(['amqp://[::1]:5672']);
  });

  it('takes a comma-separated list of a cluster’s URLs, each checked', () => {
    const url = 'amqp://u:p%2Cq@node1:5672, amqp://u:p%2Cq@node2:5672,amqps://node3';
    expect(brokerUrlsOf(loadMoAmqpOptionsFromEnv({ AMQP__URL: url }))).toEqual([
      'amqp://u:p%2Cq@node1:5672',
      'amqp://u:p%2Cq@node2:5672',
      'amqps://node3',
    ]);
    const err = configError(() => loadMoAmqpOptionsFromEnv({ AMQP__URL: 'amqp://a:secret@n1, http://a:secret@n2' }));
    expect(err.message).toContain('AMQP__URL: received "amqp://a:***@n1, http://***@n2"');
    expect(err.message).not.toContain('secret');
  });
});
