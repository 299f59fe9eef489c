import { atLeast, brokerVersionOf } from '../../lib/runtime/broker-version';

const channelOf = (version: unknown) => ({ connection: { serverProperties: { version } } }) as never;

describe('the broker version a channel announces', () => {
  it.each([
    ['3.10.8', 3, 10],
    ['4.0.5', 4, 0],
    ['4.3.6', 4, 3],
    ['4.3.0-rc.1', 4, 3],
  ])('reads %s as %i.%i', (text, major, minor) => {
    expect(brokerVersionOf(channelOf(text))).toEqual({ major, minor, text });
  });

  it.each([undefined, 42, '', 'four', Buffer.from('4.3.6')])(
    'takes %p as 0.0: nothing of a later version assumed',
    (v) => {
      const version = brokerVersionOf(channelOf(v));
      expect([version.major, version.minor]).toEqual([0, 0]);
      expect(atLeast(version, 3)).toBe(false);
    },
  );

  it('compares by major, then minor', () => {
    const v = (text: string) => brokerVersionOf(channelOf(text));
    expect(atLeast(v('4.3.6'), 4, 3)).toBe(true);
    expect(atLeast(v('4.2.9'), 4, 3)).toBe(false);
    expect(atLeast(v('5.0.0'), 4, 3)).toBe(true);
    expect(atLeast(v('3.13.7'), 4)).toBe(false);
  });
});
