import { messageOf } from './error-message';

/** What `fn` returns, or what it throws, as an Error. */
export function safely<T>(fn: () => T): T | Error {
  try {
    return fn();
  } catch (err) {
    return err instanceof Error ? err : new Error(messageOf(err));
  }
}
