import { AsyncLocalStorage } from 'node:async_hooks';
import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoEventDecoratorError } from '../errors/mo-event-decorator.error';
import {
  MO_CHANGE_WORDS_ALLOWED,
  MO_VOCABULARIES,
  MoVocabulary,
  describeAllowedWords,
  findBadMoWord,
  isMoChangeObjectType,
} from '../events/vocabulary';
import { MO_AMQP_OPTIONS, MO_EVENT_METADATA, MO_EVENT_POINT } from '../mo-amqp.constants';
import { decoratedPrototypes } from './mo-event.decorator';
import { MoEventDefinition, isAboutItself } from './mo-event-definition';
import { describeValue } from '../util/describe-value';
import { MoEventBinding, OutboxCall, isWrapped, setBinding, wrapMethod } from './mo-event.wrapper';
import { MoOutboxWriter } from '../outbox/transaction-writer';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';
import { MoEventsService } from './mo-events.service';
import { providerPrototype } from '../util/provider-prototype';

const SELECTORS = new Set(['uuid', 'time', 'objectUuid']);

/**
 * Finds `@MoEvent` methods at start-up and wraps them, on the prototype that
 * declares them, so every instance publishes: singletons, request-scoped and
 * transient providers alike, and handlers other libraries find on the prototype
 * (golevelup's `@RabbitSubscribe`).
 */
@Injectable()
export class MoEventExplorer implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('MoEvent');
  /** The instances and prototypes this application's binding hangs on, to take it off at shutdown. */
  private readonly bound = new Set<object>();
  private binding: MoEventBinding | undefined;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly events: MoEventsService,
    private readonly runtime: MoAmqpRuntime,
    @Inject(MO_AMQP_OPTIONS) private readonly options: ResolvedMoAmqpOptions,
    @Optional() private readonly outboxWriter?: MoOutboxWriter,
  ) {}

  async onModuleInit(): Promise<void> {
    try {
      this.wrapDecoratedMethods();
    } catch (err) {
      await this.runtime.abortStart(err);
      throw err;
    }
  }

  private wrapDecoratedMethods(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const prototype = providerPrototype(wrapper);
      const [method] = prototype ? this.decoratedMethods(prototype) : [];
      if (method) {
        throw new MoEventDecoratorError(
          `${method.owner.constructor.name}.${method.name}`,
          'controllers are not supported (Nest binds their routes before start-up hooks run). ' +
            'Put @MoEvent on the provider method the controller calls.',
        );
      }
    }

    const binding: MoEventBinding = (this.binding = {
      // Looked up at each call, so a test's jest.spyOn(events, 'publish') after init() sees the calls.
      // (Typed as the binding's: the decorators' words were checked at start, against the vocabulary in use.)
      publish: (...args) => (this.events.publish as MoEventBinding['publish']).apply(this.events, args),
      publishChange: (objectType, uuid) => this.events.publishChange(objectType, uuid),
      recordDecoratorFailure: () => this.runtime.count('decoratorFailures'),
      logger: this.logger,
      failures: this.options.eventFailures,
      outboxCalls: this.options.outbox === 'postgres' ? new AsyncLocalStorage<OutboxCall>() : undefined,
      inTransaction: () => this.outboxWriter?.inTransaction ?? false,
    });
    // Each prototype is wrapped once; its decorated methods are found once.
    const seen = new Map<object, boolean>();
    for (const wrapper of this.discovery.getProviders()) {
      const prototype = providerPrototype(wrapper);
      if (!prototype) continue;
      let decorated = seen.get(prototype);
      if (decorated === undefined) {
        const methods = this.decoratedMethods(prototype);
        for (const method of methods) this.bind(method.owner, method.name, method.definitions, binding);
        seen.set(prototype, (decorated = methods.length > 0));
      }
      // Every instance this application made publishes through this application's module.
      const instance: unknown = wrapper.isDependencyTreeStatic() ? wrapper.instance : undefined;
      if (decorated && instance && typeof instance === 'object') this.hang(instance, binding);
    }

    for (const prototype of decoratedPrototypes) {
      if (!seen.has(prototype) && ![...seen.keys()].some((p) => Object.prototype.isPrototypeOf.call(prototype, p))) {
        this.logger.warn(
          `${prototype.constructor.name} has @MoEvent methods but is not a provider of this application: ` +
            'calling them publishes nothing',
        );
      }
    }
  }

  /** Hands the methods back: calls after shutdown publish nothing (and say so once). */
  onApplicationShutdown(): void {
    // Another app started later may have bound a class's prototype since: leave those alone.
    for (const target of this.bound) setBinding(target, undefined, this.binding);
    this.bound.clear();
  }

  private hang(target: object, binding: MoEventBinding): void {
    setBinding(target, binding);
    this.bound.add(target);
  }

  private bind(owner: object, name: string, definitions: MoEventDefinition[], binding: MoEventBinding): void {
    const label = `${owner.constructor.name}.${name}`;
    definitions.forEach((definition) => validate(label, definition, this.options.vocabulary));
    const current = (owner as Record<string, unknown>)[name];
    // Wrapped once per process, from the metadata alone: every application shares the wrapper,
    // and each call finds its application's binding on `this`.
    if (!isWrapped(current)) {
      const point: object | undefined = Reflect.getOwnMetadata(MO_EVENT_POINT, owner, name);
      const wrapper = wrapMethod(current as (...args: unknown[]) => unknown, owner, { label, point, definitions });
      const descriptor = Object.getOwnPropertyDescriptor(owner, name) as PropertyDescriptor;
      Object.defineProperty(owner, name, { ...descriptor, value: wrapper });
    }
    // For instances made later (request-scoped, transient) and calls without `this`: the last application bound.
    this.hang(owner, binding);
  }

  /** Methods with `@MoEvent` on `prototype` and its ancestors, each on the prototype that declares it. */
  private decoratedMethods(prototype: object): { owner: object; name: string; definitions: MoEventDefinition[] }[] {
    const found: { owner: object; name: string; definitions: MoEventDefinition[] }[] = [];
    for (const name of this.scanner.getAllMethodNames(prototype)) {
      for (
        let owner: object | null = prototype;
        owner && owner !== Object.prototype;
        owner = Object.getPrototypeOf(owner)
      ) {
        const definitions: MoEventDefinition[] | undefined = Reflect.getOwnMetadata(MO_EVENT_METADATA, owner, name);
        if (definitions) {
          found.push({ owner, name, definitions });
          break;
        }
      }
    }
    return found;
  }
}

function validate(
  label: string,
  { service, objectType, action, selectors, change }: MoEventDefinition,
  vocabulary: MoVocabulary,
): void {
  const bad = findBadMoWord({ service, objectType, action }, vocabulary);
  if (bad) {
    throw new MoEventDecoratorError(
      label,
      `${bad.name} ${JSON.stringify(bad.value)} is not ${describeAllowedWords(bad)}`,
    );
  }
  if (selectors === null || typeof selectors !== 'object') {
    throw new MoEventDecoratorError(label, 'the fourth argument must be an object of selectors');
  }
  for (const [key, value] of Object.entries(selectors)) {
    if (key === 'change') continue;
    if (!SELECTORS.has(key)) {
      throw new MoEventDecoratorError(
        label,
        `unknown selector "${key}"; the selectors are uuid, time and objectUuid, and the option change`,
      );
    }
    if (typeof value !== 'function') {
      throw new MoEventDecoratorError(label, `the ${key} selector must be a function (result, ...args) => value`);
    }
  }
  const asked: unknown = selectors.change;
  if (asked !== undefined && typeof asked !== 'boolean' && !isMoChangeObjectType(change)) {
    throw new MoEventDecoratorError(
      label,
      `change ${describeValue(asked)} must be true, false or ${MO_CHANGE_WORDS_ALLOWED}`,
    );
  }
  if (change !== undefined && !isAboutItself({ service, objectType }) && !selectors.objectUuid) {
    throw new MoEventDecoratorError(
      label,
      `change: the subsystem message names the changed ${objectType} itself: give an objectUuid selector, ` +
        'e.g. { objectUuid: (engagement) => engagement.uuid }',
    );
  }
  // Said at start-up rather than at every call: the default (none) cannot satisfy it.
  if (MO_VOCABULARIES[vocabulary].objectUuidRequired && !selectors.objectUuid) {
    throw new MoEventDecoratorError(
      label,
      `the ${vocabulary} vocabulary (AMQP__VOCABULARY=${vocabulary}) requires object_uuid in every body: ` +
        'give an objectUuid selector, e.g. { objectUuid: (engagement) => engagement.uuid }',
    );
  }
}
