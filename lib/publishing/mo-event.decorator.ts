import { MO_EVENT_METADATA } from '../mo-amqp.constants';
import {
  MoAction,
  MoActionOf,
  MoObjectType,
  MoObjectTypeOf,
  MoPublishVocabulary,
  MoService,
} from '../events/vocabulary';

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

/**
 * What `@MoEvent` returns: a method decorator that takes only methods whose
 * result (resolved, for an async method) is what its selectors read, so a
 * selector written for another type is a compile error at the method.
 */
export type MoEventMethodDecorator<TResult> = <TMethod extends MethodResolvingTo<TResult>>(
  target: object,
  key: string | symbol,
  descriptor: TypedPropertyDescriptor<TMethod>,
) => void;

/** A method whose result, awaited, is a `TResult`; any method when `TResult` is `unknown`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any parameters: the selectors' arguments are checked where they are written
type MethodResolvingTo<TResult> = (...args: any[]) => TResult | PromiseLike<TResult>;

/** Prototypes that carry `@MoEvent`, so start-up can tell about those no module provides. */
export const decoratedPrototypes = new Set<object>();

/**
 * Publishes an MO event each time the method's returned promise fulfils (or a
 * synchronous method returns), never when it rejects or throws. Stack several
 * to publish several events; they are sent in the order written.
 *
 * ```ts
 * @MoEvent('employee', 'engagement', 'create', { uuid: (e) => e.employeeUuid, time: (e) => e.validFrom })
 * @MoEvent('org_unit', 'engagement', 'create', { uuid: (e) => e.orgUnitUuid, time: (e) => e.validFrom })
 * async create(dto: CreateEngagementDto): Promise<Engagement> { … }
 * ```
 *
 * Put it on methods of providers (services). The module wraps them at start-up,
 * outside every other decorator, so a transaction decorator has committed first.
 */
export function MoEvent<TResult = unknown, TArgs extends unknown[] = unknown[]>(
  service: MoService,
  objectType: MoObjectTypeOf<MoPublishVocabulary>,
  action: MoActionOf<MoPublishVocabulary>,
  selectors: MoEventSelectors<TResult, TArgs> = {},
): MoEventMethodDecorator<TResult> {
  return (target, key) => {
    // Kept on (prototype, name) rather than on the function, so a decorator
    // applied later that replaces the function cannot drop it.
    const previous: MoEventDefinition[] = Reflect.getOwnMetadata(MO_EVENT_METADATA, target, key) ?? [];
    const definition: MoEventDefinition = { service, objectType, action, selectors: selectors as MoEventSelectors };
    // Decorators apply bottom-up; prepending keeps the order they are written in.
    Reflect.defineMetadata(MO_EVENT_METADATA, [definition, ...previous], target, key);
    decoratedPrototypes.add(target);
  };
}
