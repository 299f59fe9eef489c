import { MO_EVENT_METADATA, MO_EVENT_POINT } from '../mo-amqp.constants';
import {
  MoActionOf,
  MoObjectType,
  MoObjectTypeOf,
  MoPublishVocabulary,
  MoService,
  moChangeObjectTypeOf,
} from '../events/vocabulary';
import { MoEventDefinition, MoEventSelectors } from './mo-event-definition';
import { wrapAtTransactionPoint } from './mo-event.wrapper';

export type { MoEventDefinition, MoEventSelectors } from './mo-event-definition';

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
 * With `change: true` among the selectors it also publishes OS2mo's
 * AMQP-subsystem message for the object (`engagement` with the objectUuid), so
 * one decorator feeds consumers of both generations.
 *
 * Put it on methods of providers (services). The module wraps them at start-up,
 * outside every other decorator, so a transaction decorator has committed first.
 * With the outbox on (`AMQP__OUTBOX=postgres`), an async method's events are
 * written into the transaction that is still open where `@MoEvent` is written:
 * put `@Transactional()` above `@MoEvent` to commit them with the change.
 */
export function MoEvent<TResult = unknown, TArgs extends unknown[] = unknown[]>(
  service: MoService,
  objectType: MoObjectTypeOf<MoPublishVocabulary>,
  action: MoActionOf<MoPublishVocabulary>,
  selectors: MoEventSelectors<TResult, TArgs> = {},
): MoEventMethodDecorator<TResult> {
  return <TMethod>(target: object, key: string | symbol, descriptor: TypedPropertyDescriptor<TMethod>) => {
    // Kept on (prototype, name) rather than on the function, so a decorator
    // applied later that replaces the function cannot drop it.
    const previous: MoEventDefinition[] = Reflect.getOwnMetadata(MO_EVENT_METADATA, target, key) ?? [];
    const asked = selectors?.change;
    const change =
      asked === true ? moChangeObjectTypeOf(objectType as MoObjectType) : asked === false ? undefined : asked;
    const definition: MoEventDefinition = {
      service,
      objectType,
      action,
      selectors: selectors as MoEventSelectors,
      ...(change !== undefined && { change }),
    };
    // Decorators apply bottom-up; prepending keeps the order they are written in.
    Reflect.defineMetadata(MO_EVENT_METADATA, [definition, ...previous], target, key);
    decoratedPrototypes.add(target);
    // Where the (lowest) @MoEvent is written: with the outbox on, a transaction still open
    // here (a @Transactional() above) takes the events. See wrapAtTransactionPoint.
    if (!Reflect.hasOwnMetadata(MO_EVENT_POINT, target, key) && typeof descriptor?.value === 'function') {
      const point = {};
      Reflect.defineMetadata(MO_EVENT_POINT, point, target, key);
      descriptor.value = wrapAtTransactionPoint(
        descriptor.value as (...args: unknown[]) => unknown,
        point,
        target,
      ) as TMethod;
    }
  };
}
