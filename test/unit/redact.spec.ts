import { parseAmqpUrl } from '../../lib/config/amqp-url';
import { redactSecrets, redactUrl, secretsOf } from '../../lib/config/redact';

describe('redactUrl', () => {
  it.each([
    ['amqp://guest:guest@localhost:5672/', 'amqp://guest:***@localhost:5672/'],
    ['amqps://user:p%40ss%3Aword@broker:5671/vhost', 'amqps://user:***@broker:5671/vhost'],
    ['amqp://:only-password@host', 'amqp://:***@host'],
    ['amqp://user@host', 'amqp://user@host'],
    ['amqp://host:5672', 'amqp://host:5672'],
    ['amqp://a:b@h1, amqp://c:d@h2', 'amqp://a:***@h1, amqp://c:***@h2'],
    // Malformed: everything before the last "@" goes, whatever the password holds.
    ['amqp://user:Yw3 Lm8vR@127.0.0.1:5672', 'amqp://***@127.0.0.1:5672'],
    ['amqp://user:Kp9@xQzz@127.0.0.1:5672', 'amqp://***@127.0.0.1:5672'],
    ['amqp://user:ab/cdef@127.0.0.1:5672/vh', 'amqp://***@127.0.0.1:5672/vh'],
    ['amqp://user:ab%zzcd@h', 'amqp://***@h'],
    // Without an "@": all after the first ":" (it may be a password cut short by a "#", "/" or ",").
    ['amqp://user:secretpw', 'amqp://user:***'],
    ['amqp://user:se#cret/pw', 'amqp://user:***'],
    ['amqp://host/x y', 'amqp://host/x y'],
    // A password with unencoded commas splits the list: no piece shows any of it.
    ['amqp://user:abcd,efgh@host', 'amqp://user:***,***@host'],
    ['amqp://user:abcd,efgh,ijkl@host', 'amqp://user:***,***,***@host'],
  ])('%s -> %s', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });
});

describe('parseAmqpUrl', () => {
  it('takes a URL apart, decoding user, password and vhost', () => {
    expect(parseAmqpUrl('amqps://us%3Aer:p%40ss:w@[::1]:5671/v%2Fh?heartbeat=5')).toEqual({
      scheme: 'amqps',
      user: 'us:er',
      password: 'p@ss:w',
      rawPassword: 'p%40ss:w',
      host: '[::1]',
      port: 5671,
      vhost: 'v/h',
    });
  });

  it.each([
    'amqp://user:Yw3 Lm8vR@h',
    'amqp://user:ab/cd@h',
    'amqp://user:ab@cd@h',
    'amqp://user:ab%zz@h',
    'amqp://user:ab%ff@h', // percent-encoded, but not UTF-8
    'amqp://user:ab#cd@h',
    'amqp://user:ab?cd@h',
    'amqp://h:0',
    'amqp://h:65536',
    'amqp://h/a/b',
    'amqp://',
    'http://h',
  ])('refuses %j', (text) => {
    expect(parseAmqpUrl(text)).toBeUndefined();
  });
});

describe('redactSecrets', () => {
  it('removes a secret in raw and URL-encoded form', () => {
    expect(redactSecrets('p@ss:word and p%40ss%3Aword', ['p@ss:word'])).toBe('*** and ***');
  });

  it('masks the longer of two overlapping secrets whole', () => {
    expect(redactSecrets('abcdefgh', ['abcd', 'abcdefgh'])).toBe('***');
  });

  it('ignores empty secrets', () => {
    expect(redactSecrets('text', [''])).toBe('text');
  });
});

describe('secretsOf', () => {
  it('gives each password decoded and as written', () => {
    expect(secretsOf(['amqp://u:p%40ss@h', 'amqp://u@h', 'amqp://h'])).toEqual(['p@ss', 'p%40ss']);
  });
});
