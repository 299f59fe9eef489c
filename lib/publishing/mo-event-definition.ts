import { MoAction, MoObjectType, MoService } from '../events/vocabulary';

/**
 * How `@MoEvent` finds the event's values in what the method returned (and the
 * arguments it was called with). All are optional.
 */
// Method signatures (not function-typed properties) so that a selector written for
// the method's own result type, `(e: Engagement) => …`, fits without naming generics.
export interface MoEventSelectors<TResult = unknown, TArgs extends unknown[] = unknown[]> {
  /**
   * The affected employee's or unit's UUID, or several (one message each; an
   * empty array sends none). Default: the result when it is a string, else `result.uuid`.
   */
  uuid?(result: TResult, ...args: TArgs): string | readonly string[] | null | undefined;
  /** When the change is effective (`Date` or ISO 8601 text). Default: now. */
  time?(result: TResult, ...args: TArgs): Date | string | null | undefined;
  /** The UUID of the changed object itself; adds `object_uuid` to the body (required in the `os2mo` vocabulary). */
  objectUuid?(result: TResult, ...args: TArgs): string | null | undefined;
}

/** One `@MoEvent` on a method, as recorded. */
export interface MoEventDefinition {
  readonly service: MoService;
  readonly objectType: MoObjectType;
  readonly action: MoAction;
  readonly selectors: MoEventSelectors;
}
