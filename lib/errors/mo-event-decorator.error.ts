/**
 * An `@MoEvent` or `@MoEventSubscribe` that cannot work, found at start-up: a
 * word outside the vocabulary, a bad option, or a place the library cannot use
 * (a controller). `method` is `Class.method`.
 */
export class MoEventDecoratorError extends Error {
  override readonly name = 'MoEventDecoratorError';

  constructor(
    readonly method: string,
    problem: string,
    readonly decorator: '@MoEvent' | '@MoEventSubscribe' | '@MoChangeSubscribe' = '@MoEvent',
  ) {
    super(`${decorator} on ${method}: ${problem}`);
  }
}
