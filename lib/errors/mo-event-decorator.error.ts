/**
 * An `@MoEvent` that cannot work, found at start-up: a word outside the
 * vocabulary, a selector that is not a function, or a place the library cannot
 * wrap (a controller). `method` is `Class.method`.
 */
export class MoEventDecoratorError extends Error {
  override readonly name = 'MoEventDecoratorError';

  constructor(
    readonly method: string,
    problem: string,
  ) {
    super(`@MoEvent on ${method}: ${problem}`);
  }
}
