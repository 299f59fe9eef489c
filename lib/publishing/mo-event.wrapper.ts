import { AsyncLocalStorage } from 'node:async_hooks';
import { Logger } from '@nestjs/common';
import { MoEventValidationError } from '../errors/mo-event-validation.error';
import { MoPublishError } from '../errors/mo-publish.error';
import { MoEventOptions } from '../events/mo-event';
import { moRoutingKey } from '../events/routing-key';
import { UUID_ALLOWED, normalizeUuid } from '../events/uuid';
import { MoAction, MoChangeObjectType, MoObjectType, MoService } from '../events/vocabulary';
import { MoEventDefinition, changeMessageOf, selectEvent } from './mo-event-definition';
import { MoPublishResult } from './mo-publish-result';

/** What a wrapped method needs from the running module (one per application: `MoEventExplorer` makes it). */
export interface MoEventBinding {
  publish(
    service: MoService,
    objectType: MoObjectType,
    action: MoAction,
    uuid: string,
    options?: MoEventOptions,
  ): Promise<MoPublishResult>;
  publishChange(objectType: MoChangeObjectType, uuid: string): Promise<MoPublishResult<MoChangeObjectType>>;
  /** Counts an event a method owed but did not publish. */
  recordDecoratorFailure(): void;
  readonly logger: Pick<Logger, 'error' | 'warn'>;
  /** `log`: a failed event is logged and the method's result returned; `throw`: the call rejects. */
  readonly failures: 'log' | 'throw';
  /** Set with the outbox on: the calls in flight, so the `@MoEvent` point finds its call's transaction. */
  readonly outboxCalls: AsyncLocalStorage<OutboxCall> | undefined;
  /** True when the current call runs in a transaction the outbox writes through. */
  inTransaction(): boolean;
}

/** One call of a method wrapped with the outbox on: whether its events were written at the point already. */
export interface OutboxCall {
  readonly point: object | undefined;
  readonly method: WrappedMethod;
  handled: boolean;
}

/** A method wrapped by `@MoEvent`: which events it owes (read from its metadata, the same in every application). */
export interface WrappedMethod {
  readonly label: string;
  /** The transaction point `@MoEvent` left inside the method (undefined when none was left). */
  readonly point: object | undefined;
  readonly definitions: readonly MoEventDefinition[];
}

/**
 * Which application's binding each object has: each provider instance an
 * application made (so two applications in one process each publish through
 * their own), and the prototype that declares the method, for instances made
 * later (request-scoped, transient) and calls without `this`. Keyed by the
 * objects themselves, so nothing is shared between applications, and frozen
 * instances are fine.
 */
const bindings = new WeakMap<object, MoEventBinding>();
/** Marks a function `wrapMethod` made. */
const WRAPPED = Symbol('mo-amqp:@MoEvent wrapper');

const fallbackLogger = new Logger('MoEvent');

/** The binding of the application that made `target` (or that last bound its class), if any. */
export function bindingOf(target: unknown): MoEventBinding | undefined {
  if (target === null || (typeof target !== 'object' && typeof target !== 'function')) return undefined;
  return bindings.get(target);
}

/** Gives `target` (an instance or a prototype) `binding`; `undefined` takes it off if it is still `owner`'s. */
export function setBinding(target: object, binding: MoEventBinding | undefined, owner?: MoEventBinding): void {
  if (binding) bindings.set(target, binding);
  else if (bindings.get(target) === owner) bindings.delete(target);
}

/** True for a function `wrapMethod` made. */
export function isWrapped(fn: unknown): boolean {
  return typeof fn === 'function' && (fn as { [WRAPPED]?: boolean })[WRAPPED] === true;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

/**
 * Wraps `original` (declared on `owner`) so that each call whose result fulfils
 * publishes the events, through the binding of the application that made `this`.
 * The wrapper keeps `this`, the name, the sync or async shape, the very result
 * value, and every reflect metadata entry of the original.
 */
export function wrapMethod(
  original: (...args: unknown[]) => unknown,
  owner: object,
  method: WrappedMethod,
): (...args: unknown[]) => unknown {
  let warnedUnbound = false;

  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    const binding = bindingOf(this) ?? bindingOf(owner);
    const calls = binding?.outboxCalls;
    let call: OutboxCall | undefined;
    const result = calls
      ? calls.run((call = { point: method.point, method, handled: false }), () => original.apply(this, args))
      : original.apply(this, args);
    if (!binding) {
      if (!warnedUnbound) {
        warnedUnbound = true;
        fallbackLogger.warn(
          `@MoEvent on ${method.label} ran with no MoAmqpModule started: its events are not published`,
        );
      }
      return result;
    }
    warnedUnbound = false;
    if (isPromiseLike(result)) {
      return Promise.resolve(result).then((value) => {
        // Written into the transaction at the point already: not again.
        if (call?.handled) return value;
        const sent = publishEvents(method, binding, binding.failures, value, args);
        return sent === undefined ? value : sent.then(() => value);
      });
    }
    // A synchronous method stays synchronous: its events go in the background,
    // and a failure can only be logged.
    void publishEvents(method, binding, 'log', result, args, 'sync');
    return result;
  };

  keepIdentity(original, wrapper);
  Object.defineProperty(wrapper, WRAPPED, { value: true });
  return wrapper;
}

/** The wrapper keeps the original's name and every reflect metadata entry. */
function keepIdentity(original: (...args: unknown[]) => unknown, wrapper: (...args: unknown[]) => unknown): void {
  Object.defineProperty(wrapper, 'name', { value: original.name, configurable: true });
  for (const key of Reflect.getMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getMetadata(key, original), wrapper);
  }
}

/**
 * The function `@MoEvent` leaves where it is written, inside any decorator
 * above it. It passes calls through, except with the outbox on: when the
 * method's promise fulfils while a transaction is still open here (a
 * `@Transactional()` above), the events are written into that transaction
 * before it commits, and the outer wrapper (which runs after the commit) sends
 * nothing more. A row that cannot be written rejects the call, so the
 * transaction rolls back. Synchronous methods are left to the outer wrapper.
 */
export function wrapAtTransactionPoint(
  original: (...args: unknown[]) => unknown,
  point: object,
  /** The prototype that declares the method: its binding serves calls without `this`, as outside. */
  owner: object,
): (...args: unknown[]) => unknown {
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    const result = original.apply(this, args);
    // Its `this` is the outer wrapper's, and so is the binding it finds.
    const binding = bindingOf(this) ?? bindingOf(owner);
    const call = binding?.outboxCalls?.getStore();
    if (!binding || !call || call.point !== point || call.handled || !isPromiseLike(result)) return result;
    return Promise.resolve(result).then((value) => {
      if (!binding.inTransaction()) return value;
      call.handled = true;
      const sent = publishEvents(call.method, binding, binding.failures, value, args);
      return sent === undefined ? value : sent.then(() => value);
    });
  };
  keepIdentity(original, wrapper);
  return wrapper;
}

interface Problem {
  readonly definition: MoEventDefinition;
  readonly error: unknown;
  readonly what?: string; // when not the definition's event: its subsystem message
}

/**
 * Publishes every event the result owes, all at once (one channel keeps them in
 * the order written). Returns undefined when nothing needs waiting for, so the
 * common case allocates no arrays and adds no promise hops.
 */
function publishEvents(
  state: WrappedMethod,
  binding: MoEventBinding,
  failures: 'log' | 'throw',
  result: unknown,
  args: unknown[],
  sync?: 'sync',
): Promise<void> | undefined {
  let problems: Problem[] | undefined;
  const fail = (definition: MoEventDefinition, error: unknown, what?: string) =>
    (problems ??= []).push({ definition, error, what });
  let sends: Promise<unknown>[] | undefined;
  let changes: Set<string> | undefined; // this call's subsystem messages: one per object, however many events name it
  const sendChange = (definition: MoEventDefinition, change: NonNullable<ReturnType<typeof changeMessageOf>>) => {
    if ((changes ??= new Set()).has(change.what)) return undefined;
    changes.add(change.what);
    return binding
      .publishChange(change.objectType, change.uuid)
      .then(undefined, (error: unknown) => fail(definition, error, change.what));
  };
  const send = (definition: MoEventDefinition, uuid: unknown, options: MoEventOptions) => {
    const change = definition.change === undefined ? undefined : plannedChange(definition, uuid, options, fail);
    const sent = binding
      .publish(definition.service, definition.objectType, definition.action, uuid as string, options)
      // After its event, and only when that was accepted: never a subsystem message for an event refused.
      .then(change && (() => sendChange(definition, change)), (error: unknown) => fail(definition, error));
    (sends ??= []).push(sent);
  };

  for (const definition of state.definitions) {
    let uuids: unknown;
    let options: MoEventOptions;
    try {
      [uuids, options] = selectEvent(state.label, definition, result, args);
    } catch (error) {
      fail(definition, error);
      continue;
    }
    if (!Array.isArray(uuids)) {
      send(definition, uuids, options);
      continue;
    }
    // All or none: one bad UUID stops the others, as one bad time does.
    const bad = uuids.findIndex((uuid) => normalizeUuid(uuid) === undefined);
    if (bad >= 0)
      fail(
        definition,
        new MoEventValidationError(`uuid[${bad}]`, uuids[bad], `${UUID_ALLOWED} (none of the ${uuids.length} is sent)`),
      );
    else for (const uuid of uuids) send(definition, uuid, options);
  }

  const report = () => {
    if (problems) reportProblems(state, binding, failures, problems, sync);
  };
  if (!sends) return problems ? Promise.resolve().then(report) : undefined;
  return (sends.length === 1 ? sends[0] : Promise.all(sends)).then(report);
}

/** The subsystem message an event owes, or undefined (reported through `fail`) when its object has no UUID; the event itself still goes. */
function plannedChange(
  definition: MoEventDefinition,
  uuid: unknown,
  options: MoEventOptions,
  fail: (definition: MoEventDefinition, error: unknown, what?: string) => void,
): ReturnType<typeof changeMessageOf> {
  try {
    return changeMessageOf(definition, uuid, options);
  } catch (error) {
    fail(definition, error, `its AMQP-subsystem message ${definition.change}`);
    return undefined;
  }
}

function reportProblems(
  state: WrappedMethod,
  binding: MoEventBinding,
  failures: 'log' | 'throw',
  problems: Problem[],
  sync?: 'sync',
): void {
  for (const { definition, error, what } of problems) {
    binding.recordDecoratorFailure();
    const key = moRoutingKey(definition.service, definition.objectType, definition.action);
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    binding.logger.error(`@MoEvent ${key} on ${state.label}${what ? `: ${what}` : ''} was not published: ${reason}`);
  }
  if (failures === 'throw') throw problems[0].error;
  // The transaction this call runs in cannot commit without its event: the caller must hear, whatever `failures` says.
  const outbox = problems.find(({ error }) => error instanceof MoPublishError && error.reason === 'outbox-failed');
  if (outbox && sync !== 'sync') throw outbox.error;
}
