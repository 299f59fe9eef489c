import { passwordOf, redactSecrets, redactUrl } from '../../lib/util/redact';

describe('redactUrl', () => {
  it.each([
    ['amqp://guest:guest@localhost:5672/', 'amqp://guest:***@localhost:5672/'],
    ['amqps://user:p%40ss%3Aword@broker:5671/vhost', 'amqps://user:***@broker:5671/vhost'],
    ['amqp://:only-password@host', 'amqp://:***@host'],
    ['amqp://user@host', 'amqp://user@host'],
    ['amqp://host:5672', 'amqp://host:5672'],
    ['amqp://a:b@h1, amqp://c:d@h2', 'amqp://a:***@h1, amqp://c:***@h2'],
    ['not a url but amqp://x:secret@ in text', 'not a url but amqp://x:***@ in text'],
  ])('%s -> %s', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });
});

describe('redactSecrets', () => {
  it('removes a secret in raw and URL-encoded form', () => {
    expect(redactSecrets('p@ss:word and p%40ss%3Aword', ['p@ss:word'])).toBe('*** and ***');
  });

  it('ignores empty secrets', () => {
    expect(redactSecrets('text', [''])).toBe('text');
  });
});

describe('passwordOf', () => {
  it('decodes the password of a URL', () => {
    expect(passwordOf('amqp://u:p%40ss@h')).toBe('p@ss');
    expect(passwordOf('amqp://u@h')).toBeUndefined();
    expect(passwordOf(undefined)).toBeUndefined();
  });

  it('finds the password in text that is not a valid URL', () => {
    expect(passwordOf('amqp://u:secret@h:99999')).toBe('secret');
  });
});
