import { AsyncLocalStorage } from 'node:async_hooks';
import { Logger } from '@nestjs/common';
import { MoEventDecoratorError } from '../errors/mo-event-decorator.error';
import { MoEventValidationError } from '../errors/mo-event-validation.error';
import { MoPublishError } from '../errors/mo-publish.error';
import { MoEventOptions } from '../events/mo-event';
import { moRoutingKey } from '../events/routing-key';
import { UUID_ALLOWED, normalizeUuid } from '../events/uuid';
import { MoAction, MoObjectType, MoService } from '../events/vocabulary';
import { MoEventDefinition } from './mo-event-definition';
import { MoPublishResult } from './mo-publish-result';

/** What a wrapped method needs from the running module. */
export interface MoEventBinding {
  publish(
    service: MoService,
    objectType: MoObjectType,
    action: MoAction,
    uuid: string,
    options?: MoEventOptions,
  ): Promise<MoPublishResult>;
  /** Counts an event a method owed but did not publish. */
  recordDecoratorFailure(): void;
  readonly logger: Pick<Logger, 'error' | 'warn'>;
  /** `log`: a failed event is logged and the method's result returned; `throw`: the call rejects. */
  readonly failures: 'log' | 'throw';
  /** True with the outbox on: calls then look for a transaction at the `@MoEvent` point. */
  readonly outbox: boolean;
  /** True when the current call runs in a transaction the outbox writes through. */
  inTransaction(): boolean;
}

/** One call of a method wrapped with the outbox on: whether its events were written at the point already. */
interface OutboxCall {
  readonly point: object | undefined;
  readonly state: WrappedMethodState;
  handled: boolean;
}

const outboxCalls = new AsyncLocalStorage<OutboxCall>();
/** Set once a binding with the outbox on exists; until then the point costs one comparison. */
let outboxInUse = false;

/** A method wrapped by `@MoEvent`: which events it owes, and the module it publishes through. */
export interface WrappedMethodState {
  readonly label: string;
  /** The transaction point `@MoEvent` left inside the method (undefined when none was left). */
  readonly point: object | undefined;
  readonly definitions: readonly MoEventDefinition[];
  binding: MoEventBinding | undefined;
  warnedUnbound: boolean;
}

const states = new WeakMap<object, WrappedMethodState>();
const fallbackLogger = new Logger('MoEvent');

/** The state of a function `wrapMethod` made, or undefined for any other function. */
export function wrappedState(fn: unknown): WrappedMethodState | undefined {
  return typeof fn === 'function' ? states.get(fn) : undefined;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

/**
 * Wraps `original` so that each call whose result fulfils publishes the events.
 * The wrapper keeps `this`, the name, the sync or async shape, the very result
 * value, and every reflect metadata entry of the original.
 */
export function wrapMethod(
  original: (...args: unknown[]) => unknown,
  label: string,
  definitions: readonly MoEventDefinition[],
  point?: object,
): { wrapper: (...args: unknown[]) => unknown; state: WrappedMethodState } {
  const state: WrappedMethodState = { label, point, definitions, binding: undefined, warnedUnbound: false };

  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    const binding = state.binding;
    let call: OutboxCall | undefined;
    if (binding?.outbox) outboxInUse = true;
    const result = binding?.outbox
      ? outboxCalls.run((call = { point: state.point, state, handled: false }), () => original.apply(this, args))
      : original.apply(this, args);
    if (!binding) {
      if (!state.warnedUnbound) {
        state.warnedUnbound = true;
        fallbackLogger.warn(`@MoEvent on ${label} ran with no MoAmqpModule started: its events are not published`);
      }
      return result;
    }
    if (isPromiseLike(result)) {
      return Promise.resolve(result).then((value) => {
        // Written into the transaction at the point already: not again.
        if (call?.handled) return value;
        const sent = publishEvents(state, binding, binding.failures, value, args);
        return sent === undefined ? value : sent.then(() => value);
      });
    }
    // A synchronous method stays synchronous: its events go in the background,
    // and a failure can only be logged.
    void publishEvents(state, binding, 'log', result, args, 'sync');
    return result;
  };

  keepIdentity(original, wrapper);
  states.set(wrapper, state);
  return { wrapper, state };
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
): (...args: unknown[]) => unknown {
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    const result = original.apply(this, args);
    if (!outboxInUse) return result;
    const call = outboxCalls.getStore();
    if (!call || call.point !== point || call.handled || !isPromiseLike(result)) return result;
    return Promise.resolve(result).then((value) => {
      const binding = call.state.binding;
      if (!binding?.inTransaction()) return value;
      call.handled = true;
      const sent = publishEvents(call.state, binding, binding.failures, value, args);
      return sent === undefined ? value : sent.then(() => value);
    });
  };
  keepIdentity(original, wrapper);
  return wrapper;
}

interface Problem {
  readonly definition: MoEventDefinition;
  readonly error: unknown;
}

/**
 * Publishes every event the result owes, all at once (one channel keeps them in
 * the order written). Returns undefined when nothing needs waiting for, so the
 * common case allocates no arrays and adds no promise hops.
 */
function publishEvents(
  state: WrappedMethodState,
  binding: MoEventBinding,
  failures: 'log' | 'throw',
  result: unknown,
  args: unknown[],
  sync?: 'sync',
): Promise<void> | undefined {
  let problems: Problem[] | undefined;
  const fail = (definition: MoEventDefinition, error: unknown) => (problems ??= []).push({ definition, error });
  let sends: Promise<unknown>[] | undefined;
  const send = (definition: MoEventDefinition, uuid: unknown, options: MoEventOptions) => {
    const sent = binding
      .publish(definition.service, definition.objectType, definition.action, uuid as string, options)
      .then(undefined, (error: unknown) => fail(definition, error));
    (sends ??= []).push(sent);
  };

  for (const definition of state.definitions) {
    let uuids: unknown;
    let options: MoEventOptions;
    try {
      [uuids, options] = select(state.label, definition, result, args);
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

function reportProblems(
  state: WrappedMethodState,
  binding: MoEventBinding,
  failures: 'log' | 'throw',
  problems: Problem[],
  sync?: 'sync',
): void {
  for (const { definition, error } of problems) {
    binding.recordDecoratorFailure();
    const key = moRoutingKey(definition.service, definition.objectType, definition.action);
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    binding.logger.error(`@MoEvent ${key} on ${state.label} was not published: ${reason}`);
  }
  if (failures === 'throw') throw problems[0].error;
  // The transaction this call runs in cannot commit without its event: the caller must hear, whatever `failures` says.
  const outbox = problems.find(({ error }) => error instanceof MoPublishError && error.reason === 'outbox-failed');
  if (outbox && sync !== 'sync') throw outbox.error;
}

/** The UUID (or UUIDs) and the options of one event, from the selectors or the defaults. */
function select(
  label: string,
  definition: MoEventDefinition,
  result: unknown,
  args: unknown[],
): [uuids: unknown, options: MoEventOptions] {
  const { selectors } = definition;
  const uuids = selectors.uuid
    ? call(label, 'uuid', selectors.uuid, result, args)
    : typeof result === 'string'
      ? result
      : (result as { uuid?: unknown } | null | undefined)?.uuid;
  const options: MoEventOptions = {};
  if (selectors.time) {
    const time = call(label, 'time', selectors.time, result, args);
    if (time !== undefined && time !== null) options.time = time as Date | string;
  }
  if (selectors.objectUuid) {
    const objectUuid = call(label, 'objectUuid', selectors.objectUuid, result, args);
    if (objectUuid !== undefined && objectUuid !== null) options.objectUuid = objectUuid as string;
  }
  return [uuids, options];
}

function call(
  label: string,
  name: string,
  selector: (result: unknown, ...args: unknown[]) => unknown,
  result: unknown,
  args: unknown[],
): unknown {
  try {
    return selector(result, ...args);
  } catch (error) {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new MoEventDecoratorError(label, `the ${name} selector threw ${reason}`);
  }
}
