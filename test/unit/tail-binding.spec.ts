import { collapseHashes } from '../../lib/cli/tail.command';

describe('mo-amqp tail: a binding with "#" words side by side', () => {
  it.each([
    ['#.#.#', '#'],
    ['#.#', '#'],
    ['employee.#.#', 'employee.#'],
    ['#.#.engagement.#.#.#', '#.engagement.#'],
    ['a.#.#.b.#.#.c', 'a.#.b.#.c'],
  ])('binds %s as %s, which matches the same keys and has at most two "#" here', (given, bound) => {
    expect(collapseHashes(given)).toBe(bound);
  });

  it.each(['#', '*.*.*', 'employee.*.create', '#.engagement.#', 'a.#.b.#.c.#'])(
    'leaves %s as it is: no run of "#" to make one',
    (binding) => expect(collapseHashes(binding)).toBe(binding),
  );
});
